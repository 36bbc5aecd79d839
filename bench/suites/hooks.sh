#!/usr/bin/env bash
# Suite "hooks" (issue 7, benchmark 7): cost per kernel hook.
#   bash bench/run.sh throughput latency churn-ladder hooks
#
# The suites throughput, latency and churn-ladder run with
# kernel.bpf_stats_enabled=1 and record, for each run with flowtel, the
# Δrun_time_ns and Δrun_cnt of each of its BPF programs (bpftool prog show,
# programs found through the agent's own fds). This suite renders those:
# ns per program run (= per event: one run per packet, state change or
# socket) and runs per second, from the last results in bench/.results/.
# Run the three suites first (with `bash bench/run.sh`, they run before it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/.results/hooks
mkdir -p "$OUT"
for s in throughput latency churn-ladder; do
  [[ -s $ROOT/bench/.results/$s/runs.jsonl ]] || echo "[bench hooks] warning: no results of suite $s (bash bench/run.sh $s)" >&2
done
node "$ROOT/bench/suites.mjs" render hooks "$ROOT/bench/.results" >"$OUT/table.md"
cat "$OUT/table.md"
if [[ ${BENCH_WRITE_DOCS:-1} == 1 ]]; then
  node "$ROOT/bench/suites.mjs" insert hooks "${BENCH_DOC:-$ROOT/docs/performance.md}" "$OUT/table.md"
  echo "[bench hooks] results written into ${BENCH_DOC:-$ROOT/docs/performance.md}" >&2
fi
