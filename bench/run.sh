#!/usr/bin/env bash
# flowtel benchmarks, by name (root; Debian 12 tools, see docs/performance.md "Reproduce"):
#
#   bash bench/run.sh                 every suite below, in this order
#   bash bench/run.sh SUITE...        only those, e.g. `bash bench/run.sh throughput latency`
#   bash bench/run.sh --list          the suites and what each measures
#
# Each suite prints a markdown table and writes it into docs/performance.md
# between its own markers (<!-- bench:SUITE:begin ... --> / <!-- bench:SUITE:end -->),
# with the command that produced it and the load average at each measurement;
# BENCH_WRITE_DOCS=0 only prints. Raw results: bench/.results/SUITE/runs.jsonl.
# Knobs (BENCH_*) are described at the top of each bench/suites/SUITE.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SUITES=(overhead throughput latency churn-ladder concurrency ingest export hooks dns)
declare -A WHAT=(
  [overhead]="loopback HTTP keep-alive / connection-per-request with and without flowtel and the floor tracer; churn 10k/s with ground truth; RSS (~8 min)"
  [throughput]="1. throughput tax: iperf3 1 and 4 streams and wrk keep-alive, loopback and veth, with/without flowtel (~6 min)"
  [latency]="2. latency tax: HTTP at a fixed request rate, p50/p99 with/without flowtel, loopback and veth (~4 min)"
  [churn-ladder]="3. churn ladder: 1k..50k short connections/s, flowtel's counts against nstat (~4 min)"
  [concurrency]="4. concurrency and memory: 10k/65k/200k open connections, RSS, BPF map memory, collection time (~6 min)"
  [ingest]="5. kernel -> JS ingest ceiling: close-event records/s with zero drops, and the JS decode+track ceiling (~2 min)"
  [export]="6. export cost by cardinality: 1k..200k series to a local OTLP/gRPC receiver (~2 min)"
  [hooks]="7. cost per kernel hook: ns per program run under suites 1-3 (renders their results; run them first)"
  [dns]="8. DNS flood: 10k-50k queries/s against dnsmasq, capture drops, every query counted (bench/dns/run.sh; ~4 min)"
)

if [[ ${1:-} == --list || ${1:-} == -h || ${1:-} == --help ]]; then
  for s in "${SUITES[@]}"; do printf '  %-13s %s\n' "$s" "${WHAT[$s]}"; done
  exit 0
fi

want=("$@")
((${#want[@]})) || want=("${SUITES[@]}")
for s in "${want[@]}"; do
  [[ -n ${WHAT[$s]:-} ]] || { echo "bench: unknown suite '$s' (bash bench/run.sh --list)" >&2; exit 2; }
done
rc=0
for s in "${want[@]}"; do
  echo "== bench: $s — ${WHAT[$s]}" >&2
  BENCH_COMMAND=${BENCH_COMMAND:-"bash bench/run.sh $s"} bash "$HERE/suites/$s.sh" || { rc=$?; echo "bench: suite $s failed (exit $rc)" >&2; }
done
exit "$rc"
