#!/usr/bin/env bash
# Suite "latency" (issue 7, benchmark 2): the latency tax.
#   bash bench/run.sh latency
#
# HTTP GET at a constant request rate (bench/latency: an open-loop client,
# latency measured from the time each request was due, log-linear histogram)
# against nginx (1 worker, 1 KiB page), on loopback and over a veth pair
# (bn-lc 10.91.1.1 -> bn-ls 10.91.1.2). Every repetition runs both paths without the
# agent and with flowtel (order alternated); the table gives the medians over
# repetitions of p50, p99 and p99.9, and the median of the per-repetition p99 ratios.
#
# Environment (defaults in brackets):
#   BENCH_REPS [5]           repetitions
#   BENCH_SECONDS [10]       seconds of one measured run
#   BENCH_RATE [5000]        requests per second (well under nginx's capacity here: ~50k/s)
#   BENCH_CONNECTIONS [16]   keep-alive connections the requests are spread over
#   BENCH_PATHS [lo veth]
#   BENCH_AGENT_ARGS [], BENCH_WRITE_DOCS [1]
SUITE=latency
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_tools nginx

REPS=${BENCH_REPS:-5}
SECS=${BENCH_SECONDS:-10}
RATE=${BENCH_RATE:-5000}
CONNS=${BENCH_CONNECTIONS:-16}
PATHS=(${BENCH_PATHS:-lo veth})
NS_C=bn-lc NS_S=bn-ls IP_C=10.91.1.1 IP_S=10.91.1.2

build_all latency
write_agent_config 1s
wait_no_other_agent
make_netns_pair "$NS_C" "$NS_S" "$IP_C" "$IP_S"
HTTP_LO_PORT=$(free_port)
HTTP_NS_PORT=8080
start_nginx lo "127.0.0.1:$HTTP_LO_PORT"
start_nginx veth "$IP_S:$HTTP_NS_PORT" "$NS_S"

write_meta "$(jq -cn --argjson reps "$REPS" --argjson secs "$SECS" --argjson rate "$RATE" --argjson conns "$CONNS" \
  --arg nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')" '{reps: $reps, seconds: $secs, rate: $rate, connections: $conns, nginx: $nginx}')"

run_path() { # lo|veth -> the client's JSON line
  local pre=() addr port
  if [[ $1 == veth ]]; then pre=(ip netns exec "$NS_C"); addr=$IP_S; port=$HTTP_NS_PORT; else addr=127.0.0.1; port=$HTTP_LO_PORT; fi
  "${pre[@]}" "$LATENCY_BIN" "$addr" "$port" "$RATE" 1 "$CONNS" >/dev/null # warm-up
  "${pre[@]}" "$LATENCY_BIN" "$addr" "$port" "$RATE" "$SECS" "$CONNS" | tail -1
}

configs=(off agent)
log "${REPS} reps x (${PATHS[*]}) x (off agent): ${RATE} req/s over ${CONNS} connections, ${SECS}s each"
for ((rep = 1; rep <= REPS; rep++)); do
  for ((k = 0; k < 2; k++)); do
    cfg=${configs[$(((k + rep) % 2))]}
    [[ $cfg == agent ]] && { start_agent; sleep 1; }
    for ((j = 0; j < ${#PATHS[@]}; j++)); do
      p=${PATHS[$(((j + rep) % ${#PATHS[@]}))]}
      s0="{}" c0=0
      [[ $cfg == agent ]] && { s0=$(prog_stats "$AGENT_PROGS"); c0=$(cpu_ticks "$AGENT_PID"); }
      measure_begin
      res=$(run_path "$p")
      measure_end
      agent="null"
      if [[ $cfg == agent ]]; then
        agent=$(jq -cn --argjson bpf "$(stats_delta "$s0" "$(prog_stats "$AGENT_PROGS")")" --argjson cpu "$(cpu_pct "$c0" "$(cpu_ticks "$AGENT_PID")" "$M_SECONDS")" \
          --argjson rss "$(vm_kb "$AGENT_PID" VmRSS)" '{bpf: $bpf, cpu_pct: $cpu, rss_kb: $rss}')
      fi
      record "$(jq -cn --arg p "$p" --arg cfg "$cfg" --argjson rep "$rep" --argjson res "$res" --argjson load "$M_LOAD" --argjson agent "$agent" --argjson s "$M_SECONDS" \
        '{section: "run", path: $p, config: $cfg, rep: $rep, seconds: $s, agent: $agent, client: $res} + $load')"
      log "rep $rep $cfg $p: $(jq -r '"p50 \(.p50_us) us, p99 \(.p99_us) us, \(.completed) done, \(.errors) errors"' <<<"$res"); load $(jq -r '"\(.loadavg), others \(.foreign_cpu_pct)% CPU"' <<<"$M_LOAD")"
    done
    [[ $cfg == agent ]] && stop_agent
  done
done
publish
