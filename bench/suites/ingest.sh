#!/usr/bin/env bash
# Suite "ingest" (issue 7, benchmark 5): the kernel → JavaScript ingest ceiling.
#   bash bench/run.sh ingest
#
# Two measurements:
#  1. End to end: flowtel (collection_interval 1s, default ring buffer) under
#     bench/churn asked for BENCH_INGEST_RATES connections/s between bn-ic
#     (10.94.0.1) and bn-is (10.94.0.2) for BENCH_SECONDS each. Every
#     connection makes 4 ring-buffer records (open and close of both ends).
#     Records written to the ring buffer (flowtel_ebpf_records{kind="event"})
#     all reach JavaScript unless the ring is full (flowtel_ebpf_dropped
#     {reason="ringbuf_full"}): records/s = written / seconds, with those drops.
#     flowtel's CPU is measured (all its threads, % of one core).
#  2. The JavaScript side alone (bench/ingest/replay.ts, one thread): packed
#     open/close records of a connection-per-request workload decoded,
#     tracked, collected each simulated second and recorded into the
#     OpenTelemetry SDK; CPU µs per record, so records per CPU-second — the
#     ceiling whatever the kernel could deliver.
#
# Environment (defaults in brackets):
#   BENCH_INGEST_RATES ["20000 100000"]   connections/s asked of the churn client
#   BENCH_SECONDS [10]       seconds of churn per rate
#   BENCH_JS_RATES ["10000 50000"]  connections per simulated second replayed (4 records each)
#   BENCH_JS_SECONDS [10]    simulated seconds per replay
#   BENCH_JS_REPS [5]        replays per rate (each a fresh process; the table has their median)
#   BENCH_AGENT_ARGS [], BENCH_WRITE_DOCS [1]
SUITE=ingest
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RATES=(${BENCH_INGEST_RATES:-20000 100000})
SECS=${BENCH_SECONDS:-10}
JS_SECS=${BENCH_JS_SECONDS:-10}
JS_REPS=${BENCH_JS_REPS:-5}
JS_RATES=(${BENCH_JS_RATES:-10000 50000})
NS_C=bn-ic NS_S=bn-is IP_C=10.94.0.1 IP_S=10.94.0.2
PORT=9090

build_all churn
write_agent_config 1s
wait_no_other_agent
make_netns_pair "$NS_C" "$NS_S" "$IP_C" "$IP_S"
ip netns exec "$NS_S" "$CHURN_BIN" server "$PORT" >"$WORK/churn-server.out" 2>>"$OUTDIR/churn-server.log" &
track_pid $!
wait_for_line "$WORK/churn-server.out" 'churn: ready' 10 "$!" || die "churn server did not start"
read -r -a NODE_FLAGS <<<"$(agent_node_flags)"
write_meta "$(jq -cn --argjson secs "$SECS" --argjson js "$JS_SECS" --argjson reps "$JS_REPS" --arg f "${NODE_FLAGS[*]}" '{seconds: $secs, js_seconds: $js, js_reps: $reps, node_flags: $f}')"

for rate in "${RATES[@]}"; do
  start_agent
  sleep 2
  scrape >"$WORK/m0"
  c0=$(cpu_ticks "$AGENT_PID")
  s0=$(prog_stats "$AGENT_PROGS")
  measure_begin
  ip netns exec "$NS_C" "$CHURN_BIN" client "$IP_S" "$PORT" "$rate" "$SECS" 4096 >"$WORK/client.out" 2>>"$OUTDIR/churn-client.log" ||
    die "churn client failed: see $OUTDIR/churn-client.log"
  measure_end
  cpu=$(cpu_pct "$c0" "$(cpu_ticks "$AGENT_PID")" "$M_SECONDS")
  sleep 3 # the last collection
  scrape >"$WORK/m1"
  bpf=$(stats_delta "$s0" "$(prog_stats "$AGENT_PROGS")")
  stop_agent
  ev() { series_sum "$1" flowtel_ebpf_records_total kind=event; }
  dr() { series_sum "$1" flowtel_ebpf_dropped_total reason="$2"; }
  record "$(jq -cn --argjson rate "$rate" --argjson client "$(tail -1 "$WORK/client.out")" --argjson s "$M_SECONDS" --argjson cpu "$cpu" \
    --argjson ev "$(($(ev "$WORK/m1") - $(ev "$WORK/m0")))" --argjson rb "$(($(dr "$WORK/m1" ringbuf_full) - $(dr "$WORK/m0" ringbuf_full)))" \
    --argjson rec "$(($(dr "$WORK/m1" program_recursion) - $(dr "$WORK/m0" program_recursion)))" --argjson bpf "$bpf" --argjson load "$M_LOAD" \
    '{section: "e2e", rate: $rate, client: $client, seconds: $s, cpu_pct: $cpu, event_records: $ev, ringbuf_full: $rb, recursion: $rec, bpf: $bpf} + $load')"
  log "asked $rate/s: client $(tail -1 "$WORK/client.out"); records $(($(ev "$WORK/m1") - $(ev "$WORK/m0"))); CPU $cpu %; load $M_LOAD"
done

log "JavaScript side alone: bench/ingest/replay at ${JS_RATES[*]} connections per simulated second, ${JS_SECS} s each"
[[ -f $STAGE/dist/bench/ingest/replay.js ]] || die "dist/bench/ingest/replay.js missing: npm run build"
for ((rep = 0; rep < JS_REPS; rep++)); do
  for r in "${JS_RATES[@]}"; do
    measure_begin
    node "${NODE_FLAGS[@]}" "$STAGE/dist/bench/ingest/replay.js" "$r" "$JS_SECS" >"$WORK/js.out" 2>>"$OUTDIR/replay.log" || die "replay failed: see $OUTDIR/replay.log"
    measure_end
    record "$(jq -c --argjson load "$M_LOAD" --argjson rate "$r" '{section: "js", rate: $rate} + . + $load' "$WORK/js.out")"
    log "replay $r/s (run $((rep + 1)) of $JS_REPS): $(cat "$WORK/js.out")"
  done
done
publish
