#!/usr/bin/env bash
# Suite "export" (issue 7, benchmark 6): export cost by cardinality.
#   bash bench/run.sh export
#
# For each size, a fresh Node process (bench/export/export-cost.mjs, with the
# node flags of bin/flowtel's shebang) runs EXPORT_INTERVALS collection
# intervals over SERIES series (SERIES/4 flows × tcp_bytes_sent,
# tcp_bytes_received, tcp_connections_opened, tcp_rtt_us): each records the
# interval's measurements through flowtel's InstrumentSink into a
# MeterProvider built as the agent builds it, then exports them through
# flowtel's otlp exporter (OTLP/gRPC, queue and retries off so the call
# returns with the outcome) to a receiver in a child process with the default
# 4 MiB message limit. It reports, for the first interval (every series new)
# and the steady ones after it, the CPU and wall time of the record and of
# the collect + serialize + send, the heap, the event-loop delay during the
# export, the size one request would have had, and what the receiver got.
#
# Environment (defaults in brackets):
#   BENCH_SERIES ["1000 10000 65000 200000"]
#   EXPORT_INTERVALS [4]
#   BENCH_WRITE_DOCS [1]
SUITE=export
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SERIES=(${BENCH_SERIES:-1000 10000 65000 200000})
build_all
read -r -a NODE_FLAGS <<<"$(agent_node_flags)"
write_meta "$(jq -cn --arg s "${SERIES[*]}" --arg f "${NODE_FLAGS[*]}" '{series: $s, node_flags: $f}')"
for n in "${SERIES[@]}"; do
  measure_begin
  FLOWTEL_ROOT=$STAGE node --expose-gc "${NODE_FLAGS[@]}" "$BENCH/export/export-cost.mjs" "$n" >"$WORK/out" 2>>"$OUTDIR/export.log" || die "export-cost $n failed: see $OUTDIR/export.log"
  measure_end
  record "$(jq -c --argjson load "$M_LOAD" '{section: "run"} + . + $load' "$WORK/out")"
  log "$n series: $(cat "$WORK/out"); load $M_LOAD"
done
publish
