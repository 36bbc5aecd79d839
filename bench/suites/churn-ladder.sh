#!/usr/bin/env bash
# Suite "churn-ladder" (issue 7, benchmark 3): short connections at rising rates.
#   bash bench/run.sh churn-ladder
#
# For each rate, a fresh flowtel (collection_interval 1s, Prometheus exporter
# on 127.0.0.1) watches bench/churn: a client in bn-cc (10.92.0.1) opening RATE
# connections/s for BENCH_SECONDS to a server in bn-cs (10.92.0.2) that closes
# each at once. Ground truth: the kernel's own counters in each namespace
# (nstat: ΔTcpActiveOpens − ΔTcpAttemptFails in the client, ΔTcpPassiveOpens in
# the server). After the client is done the script waits until two scrapes
# agree, then compares flowtel's tcp_connections_opened/closed (client side:
# flow.direction=outgoing; server side: incoming) with the kernel's. The table
# gives, per rate, what was achieved, what was lost, flowtel's own drop
# counters, its CPU and RSS, and the highest rate with nothing lost.
#
# Environment (defaults in brackets):
#   BENCH_RATES ["1000 5000 10000 20000 50000"]
#   BENCH_SECONDS [10]       seconds of churn per rate
#   BENCH_INFLIGHT [2048]    connections each client may have open at once
#   BENCH_CLIENTS [2]        churn clients sharing the rate (one process tops out near 10k/s here)
#   BENCH_AGENT_ARGS [], BENCH_WRITE_DOCS [1]
SUITE=churn-ladder
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RATES=(${BENCH_RATES:-1000 5000 10000 20000 50000})
SECS=${BENCH_SECONDS:-10}
INFLIGHT=${BENCH_INFLIGHT:-2048}
CLIENTS=${BENCH_CLIENTS:-2}
NS_C=bn-cc NS_S=bn-cs IP_C=10.92.0.1 IP_S=10.92.0.2
PORT=9090

build_all churn
write_agent_config 1s
wait_no_other_agent
make_netns_pair "$NS_C" "$NS_S" "$IP_C" "$IP_S"
ip netns exec "$NS_S" "$CHURN_BIN" server "$PORT" >"$WORK/churn-server.out" 2>>"$OUTDIR/churn-server.log" &
track_pid $!
wait_for_line "$WORK/churn-server.out" 'churn: ready' 10 "$!" || die "churn server did not start"

write_meta "$(jq -cn --argjson secs "$SECS" --argjson inflight "$INFLIGHT" --argjson clients "$CLIENTS" --arg rates "${RATES[*]}" '{seconds: $secs, inflight: $inflight, clients: $clients, rates: $rates}')"

run_clients() { # rate -> the clients' JSON lines summed into one
  local rate=$1 k pids=()
  for ((k = 0; k < CLIENTS; k++)); do
    ip netns exec "$NS_C" "$CHURN_BIN" client "$IP_S" "$PORT" "$(awk -v r="$rate" -v n="$CLIENTS" 'BEGIN {print r / n}')" "$SECS" "$INFLIGHT" \
      >"$WORK/client-$k.out" 2>>"$OUTDIR/churn-client.log" &
    pids+=($!)
  done
  for k in "${pids[@]}"; do wait "$k" || die "churn client failed: see $OUTDIR/churn-client.log"; done
  cat "$WORK"/client-*.out | jq -cs '{attempts: (map(.attempts) | add), established: (map(.established) | add), failed: (map(.failed) | add),
    closed: (map(.closed) | add), unfinished: (map(.unfinished) | add), seconds: (map(.seconds) | max), rate: (map(.rate) | add), clients: length}' >"$WORK/client.out"
}

agent_counts() { # file -> JSON of flowtel's counts for this flow
  local f=$1
  jq -cn --argjson oo "$(series_sum "$f" tcp_connections_opened_total flow_direction=outgoing destination_address=$IP_S destination_port=$PORT)" \
    --argjson co "$(series_sum "$f" tcp_connections_closed_total flow_direction=outgoing destination_address=$IP_S destination_port=$PORT)" \
    --argjson oi "$(series_sum "$f" tcp_connections_opened_total flow_direction=incoming source_address=$IP_S source_port=$PORT)" \
    --argjson ci "$(series_sum "$f" tcp_connections_closed_total flow_direction=incoming source_address=$IP_S source_port=$PORT)" \
    --argjson fl "$(series_sum "$f" tcp_connection_failures_total destination_address=$IP_S destination_port=$PORT)" \
    --argjson rb "$(series_sum "$f" flowtel_ebpf_dropped_total reason=ringbuf_full)" \
    --argjson sa "$(series_sum "$f" flowtel_ebpf_dropped_total reason=storage_alloc_failed)" \
    --argjson rec "$(series_sum "$f" flowtel_ebpf_dropped_total reason=program_recursion)" \
    --argjson ev "$(series_sum "$f" flowtel_ebpf_records_total kind=event)" \
    --argjson rcc "$(series_sum "$f" flowtel_ebpf_recovered_total reason=close_unseen)" \
    --argjson rco "$(series_sum "$f" flowtel_ebpf_recovered_total reason=open_unseen)" \
    '{opened_out: $oo, closed_out: $co, opened_in: $oi, closed_in: $ci, failures: $fl, dropped_ringbuf: $rb, dropped_storage: $sa, dropped_recursion: $rec, event_records: $ev,
      recovered_close: $rcc, recovered_open: $rco}'
}

for rate in "${RATES[@]}"; do
  start_agent
  sleep 1
  a0=$(nst "$NS_C" TcpActiveOpens); f0=$(nst "$NS_C" TcpAttemptFails); p0=$(nst "$NS_S" TcpPassiveOpens)
  s0=$(prog_stats "$AGENT_PROGS"); c0=$(cpu_ticks "$AGENT_PID")
  start_sampler "$AGENT_PID" "$WORK/rss"
  measure_begin
  run_clients "$rate"
  measure_end
  cpu=$(cpu_pct "$c0" "$(cpu_ticks "$AGENT_PID")" "$M_SECONDS")
  stop_sampler
  a1=$(nst "$NS_C" TcpActiveOpens); f1=$(nst "$NS_C" TcpAttemptFails); p1=$(nst "$NS_S" TcpPassiveOpens)
  # Wait for a final collection: counts that hold still over two scrapes, at least 3 s after the last connection.
  sleep 3
  prev="" stable=0 waited=3
  for ((i = 0; i < 60 && stable < 2; i++)); do
    scrape >"$WORK/metrics"
    cur=$(agent_counts "$WORK/metrics")
    # Stable: this flow's four counts (the host's other traffic keeps changing the global counters).
    key=$(jq -c '[.opened_out, .closed_out, .opened_in, .closed_in]' <<<"$cur")
    if [[ $key == "$prev" ]]; then stable=$((stable + 1)); else stable=0; fi
    prev=$key
    sleep 1
    waited=$((waited + 1))
  done
  cp "$WORK/metrics" "$OUTDIR/metrics-$rate.txt"
  bpf=$(stats_delta "$s0" "$(prog_stats "$AGENT_PROGS")")
  hwm=$(vm_kb "$AGENT_PID" VmHWM)
  stop_agent
  record "$(jq -cn --argjson rate "$rate" --argjson client "$(tail -1 "$WORK/client.out")" --argjson agent "$cur" --argjson bpf "$bpf" \
    --argjson active "$((a1 - a0))" --argjson fails "$((f1 - f0))" --argjson passive "$((p1 - p0))" --argjson cpu "$cpu" \
    --argjson rss "$(max_of "$WORK/rss")" --argjson hwm "${hwm:-0}" --argjson waited "$waited" --argjson load "$M_LOAD" --argjson s "$M_SECONDS" \
    '{section: "run", rate: $rate, seconds: $s, client: $client, nstat: {active_opens: $active, attempt_fails: $fails, passive_opens: $passive},
      agent: $agent, bpf: $bpf, cpu_pct: $cpu, rss_max_kb: $rss, hwm_kb: $hwm, final_wait_s: $waited} + $load')"
  log "rate $rate: client $(tail -1 "$WORK/client.out"); nstat active $((a1 - a0)) fails $((f1 - f0)) passive $((p1 - p0)); agent $cur; load $M_LOAD"
done
publish
