#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

namespace flowtel {

namespace {

constexpr size_t kMaxLines = 2000;  // verifier logs are long; keep the tail

std::mutex g_mu;
std::deque<LogLine> g_lines;
std::string g_partial;  // text not yet terminated by '\n'
int g_partial_level = 0;
uint64_t g_next_seq = 0;
bool g_debug = false;

void PushLocked(int level, std::string text) {
  g_lines.push_back(LogLine{g_next_seq++, level, std::move(text)});
  while (g_lines.size() > kMaxLines) g_lines.pop_front();
}

int PrintFn(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_debug) return 0;
  char stack_buf[1024];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(stack_buf, sizeof(stack_buf), fmt, copy);
  va_end(copy);
  if (n < 0) return 0;
  std::string text;
  if ((size_t)n < sizeof(stack_buf)) {
    text.assign(stack_buf, n);
  } else {
    text.resize(n + 1);
    vsnprintf(&text[0], n + 1, fmt, args);
    text.resize(n);
  }
  if (g_debug) fputs(text.c_str(), stderr);

  std::lock_guard<std::mutex> lock(g_mu);
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      if (g_partial.empty()) g_partial_level = level;
      g_partial.append(text, start, std::string::npos);
      break;
    }
    std::string line = g_partial;
    int line_level = g_partial.empty() ? (int)level : g_partial_level;
    g_partial.clear();
    line.append(text, start, nl - start);
    PushLocked(line_level, std::move(line));
    start = nl + 1;
  }
  return n;
}

}  // namespace

void InstallLibbpfLogger() {
  const char* dbg = getenv("FLOWTEL_LIBBPF_DEBUG");
  g_debug = dbg && strcmp(dbg, "1") == 0;
  libbpf_set_print(PrintFn);
}

uint64_t LibbpfLogMark() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_next_seq;
}

std::vector<LogLine> LibbpfLogSince(uint64_t since, size_t max_lines) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_partial.empty()) {  // flush an unterminated line so callers see it
    PushLocked(g_partial_level, g_partial);
    g_partial.clear();
  }
  std::vector<LogLine> out;
  size_t first = g_lines.size();
  while (first > 0 && g_lines[first - 1].seq >= since && g_lines.size() - first < max_lines) first--;
  for (size_t i = first; i < g_lines.size(); i++) out.push_back(g_lines[i]);
  return out;
}

}  // namespace flowtel
