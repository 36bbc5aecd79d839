#!/usr/bin/env bash
# Suite "throughput" (issue 7, benchmark 1): the throughput tax.
#   bash bench/run.sh throughput
#
# Bulk TCP with iperf3 (1 and 4 parallel streams) and HTTP keep-alive requests
# with wrk (1 thread, BENCH_CONNECTIONS connections, nginx 1 worker, 1 KiB
# page), each on loopback (127.0.0.1) and over a veth pair between two network
# namespaces (bn-tc 10.91.0.1 -> bn-ts 10.91.0.2). Every repetition runs every
# workload without the agent and with flowtel (order of the two rotated each
# repetition; within a configuration, the workloads in a rotated order); the
# table gives per-workload medians and the median of the per-repetition ratios.
# Each measured run records the load average and the CPU other processes used.
# For iperf3 it also records the CPU both ends used per GB moved (iperf3's own
# cpu_utilization_percent): a cost that other load disturbs less than the rate.
#
# Environment (defaults in brackets):
#   BENCH_REPS [5]           repetitions
#   BENCH_SECONDS [5]        seconds of one measured run (after 1 s of warm-up for wrk)
#   BENCH_CONNECTIONS [32]   wrk connections
#   BENCH_WORKLOADS [all]    a subset of: iperf1-lo iperf4-lo iperf1-veth iperf4-veth wrk-lo wrk-veth
#   BENCH_AGENT_ARGS []      more arguments for `flowtel run`
#   BENCH_WRITE_DOCS [1]     0: print the table only
SUITE=throughput
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_tools iperf3 wrk nginx

REPS=${BENCH_REPS:-5}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-32}
WORKLOADS=(${BENCH_WORKLOADS:-iperf1-lo iperf4-lo iperf1-veth iperf4-veth wrk-lo wrk-veth})
NS_C=bn-tc NS_S=bn-ts IP_C=10.91.0.1 IP_S=10.91.0.2

build_all
write_agent_config 1s
wait_no_other_agent
make_netns_pair "$NS_C" "$NS_S" "$IP_C" "$IP_S"

IPERF_LO_PORT=$(free_port)
IPERF_NS_PORT=5201
HTTP_LO_PORT=$(free_port)
HTTP_NS_PORT=8080
iperf3 -s -p "$IPERF_LO_PORT" -B 127.0.0.1 >"$OUTDIR/iperf-lo.log" 2>&1 &
track_pid $!
ip netns exec "$NS_S" iperf3 -s -p "$IPERF_NS_PORT" -B "$IP_S" >"$OUTDIR/iperf-veth.log" 2>&1 &
track_pid $!
start_nginx lo "127.0.0.1:$HTTP_LO_PORT"
start_nginx veth "$IP_S:$HTTP_NS_PORT" "$NS_S"
sleep 0.5

write_meta "$(jq -cn --argjson reps "$REPS" --argjson secs "$SECS" --argjson conns "$CONNS" \
  --arg iperf "$(iperf3 --version 2>&1 | awk 'NR==1{print $2}')" --arg nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
  '{reps: $reps, seconds: $secs, connections: $conns, iperf3: $iperf, nginx: $nginx}')"

run_workload() { # workload -> prints {value, unit, detail}
  local w=$1 out=$WORK/w.out pre=() addr port streams
  case $w in
    iperf*)
      streams=${w#iperf}; streams=${streams%%-*}
      if [[ $w == *-veth ]]; then pre=(ip netns exec "$NS_C"); addr=$IP_S; port=$IPERF_NS_PORT; else addr=127.0.0.1; port=$IPERF_LO_PORT; fi
      "${pre[@]}" iperf3 -c "$addr" -p "$port" -t "$SECS" -P "$streams" -J >"$out" 2>&1 || true
      # CPU per GB: both iperf3 ends' CPU (user + system, % of wall time) for the bytes moved; less disturbed by other load than the rate.
      jq -c '{value: (.end.sum_received.bits_per_second / 1e9), unit: "Gbit/s",
        detail: {retransmits: (.end.sum_sent.retransmits // 0),
                 cpu_s_per_gb: (((.end.cpu_utilization_percent.host_total + .end.cpu_utilization_percent.remote_total) / 100 * .end.sum_received.seconds) / (.end.sum_received.bytes / 1e9))}}' "$out" 2>/dev/null ||
        { cat "$out" >&2; die "iperf3 $w gave no result"; }
      ;;
    wrk*)
      if [[ $w == *-veth ]]; then pre=(ip netns exec "$NS_C"); addr=$IP_S:$HTTP_NS_PORT; else addr=127.0.0.1:$HTTP_LO_PORT; fi
      "${pre[@]}" wrk -t1 -c"$CONNS" -d1s "http://$addr/" >/dev/null 2>&1 || true
      "${pre[@]}" wrk -t1 -c"$CONNS" -d"$SECS"s "http://$addr/" >"$out" 2>&1 || true
      local rps errs
      rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
      errs=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10} /Non-2xx/ {print $NF}' "$out" | awk '{s += $1} END {print s + 0}')
      [[ -n $rps ]] || { cat "$out" >&2; die "wrk $w gave no result"; }
      jq -cn --argjson v "$rps" --argjson e "$errs" '{value: $v, unit: "req/s", detail: {errors: $e}}'
      ;;
  esac
}

configs=(off agent)
log "${REPS} reps x (${WORKLOADS[*]}) x (off agent), ${SECS}s each"
for ((rep = 1; rep <= REPS; rep++)); do
  for ((k = 0; k < 2; k++)); do
    cfg=${configs[$(((k + rep) % 2))]}
    [[ $cfg == agent ]] && { start_agent; sleep 1; }
    n=${#WORKLOADS[@]}
    for ((j = 0; j < n; j++)); do
      w=${WORKLOADS[$(((j + rep) % n))]}
      s0="{}" c0=0
      [[ $cfg == agent ]] && { s0=$(prog_stats "$AGENT_PROGS"); c0=$(cpu_ticks "$AGENT_PID"); }
      measure_begin
      res=$(run_workload "$w")
      measure_end
      agent="null"
      if [[ $cfg == agent ]]; then
        agent=$(jq -cn --argjson bpf "$(stats_delta "$s0" "$(prog_stats "$AGENT_PROGS")")" --argjson cpu "$(cpu_pct "$c0" "$(cpu_ticks "$AGENT_PID")" "$M_SECONDS")" \
          --argjson rss "$(vm_kb "$AGENT_PID" VmRSS)" '{bpf: $bpf, cpu_pct: $cpu, rss_kb: $rss}')
      fi
      record "$(jq -cn --arg w "$w" --arg cfg "$cfg" --argjson rep "$rep" --argjson res "$res" --argjson load "$M_LOAD" --argjson agent "$agent" --argjson s "$M_SECONDS" \
        '{section: "run", workload: $w, config: $cfg, rep: $rep, seconds: $s, agent: $agent} + $res + $load')"
      log "rep $rep $cfg $w: $(jq -r '"\(.value) \(.unit)"' <<<"$res"); load $(jq -r '"\(.loadavg), others \(.foreign_cpu_pct)% CPU"' <<<"$M_LOAD")"
    done
    [[ $cfg == agent ]] && stop_agent
  done
done
publish
