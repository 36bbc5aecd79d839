#!/usr/bin/env bash
# Suite "concurrency" (issue 7, benchmark 4): many open connections at once.
#   bash bench/run.sh concurrency
#
# For each level N, a fresh flowtel (collection_interval 1s) watches N TCP
# connections held open between two namespaces: `churn hold-client` in bn-xc
# opens them from BENCH_SOURCES source addresses (10.93.0.11, .12, ...: each
# has its own ephemeral port range, so 200k connections do not exhaust ports)
# to `churn hold-server` in bn-xs (10.93.0.2), which keeps every one open
# (several pairs of them, each on its own port, when one process may not hold
# N descriptors: RLIMIT_NOFILE's hard limit without CAP_SYS_RESOURCE). Both
# ends are on this host, so the agent tracks 2·N sockets. Once the agent's
# flowtel_tracked_connections has seen them and a few collections went by, it
# records, over BENCH_SETTLE seconds: the agent's RSS (and peak), its CPU, the
# memory of its BPF maps (bytes_memlock of the maps it holds, bpftool), its
# drop counters (storage_alloc_failed is the per-socket storage being full),
# and the time of one collection (flowtel_collection_duration_us: mean and the
# bucket of the slowest; when the agent is too busy to answer scrapes, the
# longest collection it logged as slower than collection_interval).
#
# Environment (defaults in brackets):
#   BENCH_LEVELS ["10000 65000 200000"]   connections held open
#   BENCH_OPEN_RATE [20000]  connections opened per second
#   BENCH_SOURCES [8]        client source addresses
#   BENCH_SETTLE [10]        seconds of steady state measured per level
#   BENCH_SEE_TIMEOUT [180]  seconds to wait for flowtel to track every socket (it may be too busy to answer)
#   BENCH_AGENT_ARGS [], BENCH_WRITE_DOCS [1]
SUITE=concurrency
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

LEVELS=(${BENCH_LEVELS:-10000 65000 200000})
OPEN_RATE=${BENCH_OPEN_RATE:-20000}
NSRC=${BENCH_SOURCES:-8}
SETTLE=${BENCH_SETTLE:-10}
SEE_TIMEOUT=${BENCH_SEE_TIMEOUT:-180}
NS_C=bn-xc NS_S=bn-xs IP_C=10.93.0.1 IP_S=10.93.0.2

build_all churn
write_agent_config 1s
wait_no_other_agent
make_netns_pair "$NS_C" "$NS_S" "$IP_C" "$IP_S"
SOURCES=""
for ((i = 1; i <= NSRC; i++)); do
  ip -n "$NS_C" addr add "10.93.0.$((10 + i))/24" dev "${NS_C}0"
  SOURCES+="${SOURCES:+,}10.93.0.$((10 + i))"
done
ip netns exec "$NS_S" sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
ip netns exec "$NS_C" sysctl -q -w net.ipv4.tcp_max_tw_buckets=1048576

write_meta "$(jq -cn --arg levels "${LEVELS[*]}" --argjson rate "$OPEN_RATE" --argjson nsrc "$NSRC" --argjson settle "$SETTLE" \
  '{levels: $levels, open_rate: $rate, sources: $nsrc, settle: $settle}')"

SRVS=()
CLIS=()
stop_all() { local p; for p in "${CLIS[@]}" "${SRVS[@]}"; do stop_pid "$p" 60 >/dev/null; done; CLIS=(); SRVS=(); }
suite_cleanup() { stop_all; }
tracked() { series_sum "$1" flowtel_tracked_connections; }
dropped() { series_sum "$1" flowtel_ebpf_dropped_total reason="$2"; }
# Descriptors one process may hold (the hard limit, unless we may raise it), less some spare.
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
PER_PROC=$((NOFILE - 200))
((PER_PROC > 0)) || die "RLIMIT_NOFILE hard limit $NOFILE is too low"

idx=0
for n in "${LEVELS[@]}"; do
  idx=$((idx + 1))
  shards=$(((n + PER_PROC - 1) / PER_PROC))
  base=$((9000 + idx * 100)) # new ports per level: the last level's TIME_WAITs do not get in the way
  for ((k = 0; k < shards; k++)); do
    ip netns exec "$NS_S" "$CHURN_BIN" hold-server "$((base + k))" >"$WORK/srv-$k.out" 2>>"$OUTDIR/hold-server.log" &
    SRVS+=($!)
    wait_for_line "$WORK/srv-$k.out" 'churn: ready' 10 "$!" || die "hold-server did not start: see $OUTDIR/hold-server.log"
  done
  start_agent
  sleep 2
  rss_idle=$(vm_kb "$AGENT_PID" VmRSS)
  log "level $n: opening $n connections at ${OPEN_RATE}/s from $NSRC addresses ($shards client/server pairs)"
  t_open=$(now)
  for ((k = 0; k < shards; k++)); do
    cnt=$(((n - k * PER_PROC) < PER_PROC ? (n - k * PER_PROC) : PER_PROC))
    ip netns exec "$NS_C" "$CHURN_BIN" hold-client "$IP_S" "$((base + k))" "$cnt" "$((OPEN_RATE / shards + 1))" "$SOURCES" >"$WORK/cli-$k.out" 2>>"$OUTDIR/hold-client.log" &
    CLIS+=($!)
  done
  for ((k = 0; k < shards; k++)); do
    wait_for_line "$WORK/cli-$k.out" '"held"' 600 "${CLIS[$k]}" || die "hold-client $k did not finish opening: see $OUTDIR/hold-client.log"
  done
  client=$(cat "$WORK"/cli-*.out | jq -cs '{held: (map(.held) | add), failed: (map(.failed) | add), seconds: (map(.seconds) | max), processes: length}')
  held=$(jq .held <<<"$client")
  # Until the agent tracks both ends of every connection held (at most BENCH_SEE_TIMEOUT s).
  want=$((2 * held))
  deadline=$((SECONDS + SEE_TIMEOUT))
  t=0
  while ((SECONDS < deadline)); do
    scrape 5 >"$WORK/m0"
    t=$(tracked "$WORK/m0")
    ((t >= want)) && break
    sleep 1
  done
  seen_after=$(elapsed "$t_open" "$(now)")
  ((t >= want)) || log "level $n: flowtel tracks $t of $want sockets after ${seen_after}s (scrapes answered: $([[ -s $WORK/m0 ]] && echo yes || echo no))"
  sleep 3
  scrape 10 >"$WORK/m0"
  c0=$(cpu_ticks "$AGENT_PID")
  start_sampler "$AGENT_PID" "$WORK/rss"
  measure_begin
  sleep "$SETTLE"
  scrape 10 >"$WORK/m1"
  measure_end
  stop_sampler
  cpu=$(cpu_pct "$c0" "$(cpu_ticks "$AGENT_PID")" "$M_SECONDS")
  answered=$([[ -s $WORK/m0 && -s $WORK/m1 ]] && echo true || echo false)
  coll='{"count":0,"sum":0,"mean":null,"max_le":null}'
  [[ $answered == true ]] && coll=$(node "$BENCH/prom-hist.mjs" flowtel_collection_duration_us "$WORK/m0" "$WORK/m1")
  maps=$(map_memlock "$AGENT_MAPS")
  hwm=$(vm_kb "$AGENT_PID" VmHWM)
  cp "$WORK/m1" "$OUTDIR/metrics-$n.txt"
  stop_agent
  # The agent's own word on collections longer than the interval (also when it was too busy to answer scrapes).
  slow=$({ grep -h 'a collection took longer than collection_interval' "$AGENT_LOG" || true; } | jq -cs '[.[].duration_ms] | {count: length, max_ms: (max // null)}')
  record "$(jq -cn --argjson n "$n" --argjson client "$client" --argjson tracked "$(tracked "$WORK/m1")" --argjson seen "$seen_after" \
    --argjson rss "$(max_of "$WORK/rss")" --argjson idle "$rss_idle" --argjson hwm "${hwm:-0}" --argjson cpu "$cpu" \
    --argjson coll "$coll" --argjson maps "$maps" --argjson load "$M_LOAD" --argjson answered "$answered" --argjson slow "$slow" \
    --argjson killed "$AGENT_KILLED" \
    --argjson sa "$(dropped "$WORK/m1" storage_alloc_failed)" --argjson lm "$(dropped "$WORK/m1" listener_map_full)" \
    --argjson rb "$(dropped "$WORK/m1" ringbuf_full)" --argjson rec "$(dropped "$WORK/m1" program_recursion)" \
    '{section: "run", level: $n, client: $client, tracked: $tracked, seen_after_s: $seen, rss_max_kb: $rss, rss_idle_kb: $idle, hwm_kb: $hwm,
      cpu_pct: $cpu, collection: $coll, slow_collections: $slow, scrapes_answered: $answered, killed: ($killed == 1), maps: $maps,
      dropped: {storage_alloc_failed: $sa, listener_map_full: $lm, ringbuf_full: $rb, program_recursion: $rec}} + $load')"
  log "level $n: client $client; tracked $(tracked "$WORK/m1"); RSS $(($(max_of "$WORK/rss") / 1024)) MB; collection $coll; slow $slow; maps $(jq -c .total <<<"$maps") B; load $M_LOAD"
  stop_all
done
publish
