// Captures libbpf's log (libbpf_set_print is process-global).
// WARN and INFO lines are always kept in a bounded in-memory ring; DEBUG lines
// are only produced when FLOWTEL_LIBBPF_DEBUG=1. With FLOWTEL_LIBBPF_DEBUG=1
// every line is also forwarded to stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowtel {

void InstallLibbpfLogger();

struct LogLine {
  uint64_t seq;
  int level;  // enum libbpf_print_level: 0 WARN, 1 INFO, 2 DEBUG
  std::string text;
};

// Sequence number the next captured line will get.
uint64_t LibbpfLogMark();
// Up to max_lines most recent lines with seq >= since.
std::vector<LogLine> LibbpfLogSince(uint64_t since, size_t max_lines);

}  // namespace flowtel
