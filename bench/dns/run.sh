#!/usr/bin/env bash
# flowtel DNS flood benchmark: `bash bench/dns/run.sh` (root; ~4 minutes with the defaults).
#
# dnsmasq answers in one network namespace, dnsperf (Debian's dnsperf) floods it
# from another, over a veth pair, at each rate of BENCH_DNS_RATES queries/s for
# BENCH_DNS_SECONDS; flowtel runs with the ebpf_dns receiver capturing in the
# client's namespace (each query and each response is one captured packet) and
# a Prometheus endpoint. Per run it records:
#   - queries sent / completed / lost, as dnsperf counts them (ground truth);
#   - queries and responses the agent counted (dns_queries, dns_responses, read
#     from its Prometheus endpoint after the run), and how many of the queries it
#     attributed to dnsperf's process (process.executable.name);
#   - capture drops (PACKET_STATISTICS tp_drops: flowtel_dns_capture_drops) and
#     packets passed (tp_packets);
#   - the agent's CPU (% of one core, /proc/PID/stat: its JS thread and its
#     native reader threads together) and peak RSS; dnsmasq's and dnsperf's CPU;
#   - BPF run time per program run (kernel.bpf_stats_enabled=1);
#   - the load average before and after, and the CPU other processes used
#     meanwhile (the machine may be shared).
# The last rate is run a second time with process_attribution off, to show what
# attribution costs. Prints a markdown table and writes it into
# docs/performance.md between the bench:dns markers. Raw results:
# bench/.results/dns/runs.jsonl (and the agent logs).
#
# Environment (defaults in brackets):
#   BENCH_DNS_RATES ["10000 25000 50000"]  queries/s (dnsperf -Q); packets/s are twice that
#   BENCH_DNS_SECONDS [30]                 seconds per run
#   BENCH_DNS_CLIENTS [8]                  dnsperf sockets (-c); BENCH_DNS_OUTSTANDING [1000] (-q)
#   BENCH_DNS_NAMES [1000]                 distinct names queried (the agent keeps top_names=100 of them)
#   BENCH_DNS_ATTRIBUTION_OFF [1]          0: no extra run without process attribution
#   BENCH_WRITE_DOCS [1]                   0: print the table only
#   BENCH_BUILD [auto]                     1: `npm run build` first; auto: only when dist/ is missing
# Quick look (about 1 minute): BENCH_DNS_RATES=20000 BENCH_DNS_SECONDS=10 bash bench/dns/run.sh
#
# Traffic goes only between two network namespaces the script creates
# (dnb-c 10.201.44.1 <-> dnb-s 10.201.44.2, a veth pair) and to the agent's
# Prometheus endpoint on 127.0.0.1. Everything it starts it stops; the
# namespaces are deleted and bpf_stats_enabled is restored on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RATES=${BENCH_DNS_RATES:-10000 25000 50000}
SECONDS_RUN=${BENCH_DNS_SECONDS:-30}
CLIENTS=${BENCH_DNS_CLIENTS:-8}
OUTSTANDING=${BENCH_DNS_OUTSTANDING:-1000}
NAMES=${BENCH_DNS_NAMES:-1000}
ATTR_OFF=${BENCH_DNS_ATTRIBUTION_OFF:-1}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
DOC=$ROOT/docs/performance.md
NS_C=dnb-c
NS_S=dnb-s
IP_C=10.201.44.1
IP_S=10.201.44.2

log() { printf '[bench-dns %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (loads eBPF programs, creates network namespaces)"
missing=()
for t in dnsmasq dnsperf bpftool jq curl ip node; do command -v "$t" >/dev/null || missing+=("$t"); done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (Debian: apt-get install dnsmasq-base dnsperf bpftool jq curl iproute2)"
for ns in "$NS_C" "$NS_S"; do
  ! ip netns list | grep -qw "^$ns" || die "network namespace $ns exists (a previous run?): ip netns del $ns"
done

OUTDIR=$ROOT/bench/.results/dns
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/logs"
RUNS=$OUTDIR/runs.jsonl
: >"$RUNS"
WORK=$(mktemp -d /tmp/flowtel-bench-dns.XXXXXX)
chmod 755 "$WORK"
AGENT_PID="" DNSMASQ_PID="" SAMPLER_PID="" NETNS_MADE=0
STATS_OLD=$(cat /proc/sys/kernel/bpf_stats_enabled)

stop_pid() { # pid [seconds]
  local pid=$1 limit=${2:-15} i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for ((i = 0; i < limit * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  stop_pid "$AGENT_PID" 10
  stop_pid "$DNSMASQ_PID" 5
  if ((NETNS_MADE)); then
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true
  fi
  echo "$STATS_OLD" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ------------------------------------------------------------------ build ---
if [[ ${BENCH_BUILD:-auto} == 1 || ! -f $ROOT/dist/src/cli/main.js || ! -f $ROOT/bpf/.output/flowtel_dns.bpf.o ]]; then
  log "building flowtel (npm run build)"
  (cd "$ROOT" && npm run build >"$OUTDIR/build.log" 2>&1) || die "npm run build failed: see $OUTDIR/build.log"
fi
# A private copy of the build: a rebuild of the work tree meanwhile does not change what is measured.
STAGE=$WORK/flowtel
mkdir -p "$STAGE/bpf/.output" "$STAGE/native/build/Release"
cp -a "$ROOT/package.json" "$ROOT/bin" "$ROOT/dist" "$STAGE/"
cp "$ROOT"/bpf/.output/*.bpf.o "$STAGE/bpf/.output/"
cp "$ROOT"/native/build/Release/*.node "$STAGE/native/build/Release/"
cp "$ROOT/native/binding.gyp" "$STAGE/native/"
ln -s "$ROOT/node_modules" "$STAGE/node_modules"
node "$STAGE/bin/flowtel" version >/dev/null || die "the build in $ROOT does not run"

# --------------------------------------------------------------- helpers ---
CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
loadavg() { awk '{print $1}' /proc/loadavg; }
total_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # busy ticks of all CPUs: user nice system irq softirq steal
free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
wait_for_line() { # file pattern seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
series_sum() { # file metric label=value... : sum of the series whose labels contain each pair
  local file=$1 metric=$2
  shift 2
  awk -v m="$metric" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    index($0, m "{") == 1 || $1 == m {
      ok = 1
      for (i = 1; i <= n; i++) { split(w[i], kv, "="); if (index($0, kv[1] "=\"" kv[2] "\"") == 0) ok = 0 }
      if (ok) s += $NF
    }
    END { printf "%d\n", s }' "$file"
}
prog_stats() { # pid -> {name: {ns, cnt}} of the BPF programs it holds
  local ids
  ids=$({ grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null || true; } | awk '{print $2}' | sort -un | jq -cs .)
  bpftool prog show --json | jq -c --argjson ids "$ids" \
    'map(select(.id as $i | $ids | index($i))) | map({key: .name, value: {ns: (.run_time_ns // 0), cnt: (.run_cnt // 0)}}) | from_entries'
}

# --------------------------------------------------------------- network ---
NETNS_MADE=1
ip netns add "$NS_C"
ip netns add "$NS_S"
ip link add dnbc0 netns "$NS_C" type veth peer name dnbs0 netns "$NS_S"
for pair in "$NS_C dnbc0 $IP_C" "$NS_S dnbs0 $IP_S"; do
  read -r ns dev ip <<<"$pair"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev "$dev"
  ip -n "$ns" link set "$dev" up
done
# dnsmasq answers every name under bench.test itself, from memory; nothing is forwarded.
ip netns exec "$NS_S" dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null --user=root --pid-file= \
  --log-facility=- --bind-interfaces --listen-address="$IP_S" --port=53 --cache-size=0 --dns-forward-max=10000 \
  --address=/bench.test/10.9.9.9 >"$OUTDIR/logs/dnsmasq.log" 2>&1 &
DNSMASQ_PID=$!
wait_for_line "$OUTDIR/logs/dnsmasq.log" 'started, version' 10 "$DNSMASQ_PID" || die "dnsmasq did not start: see $OUTDIR/logs/dnsmasq.log"
for ((i = 0; i < NAMES; i++)); do echo "n$i.bench.test A"; done >"$WORK/names.txt"
DNSPERF_VERSION=$(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')

echo 1 >/proc/sys/kernel/bpf_stats_enabled
jq -cn --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" \
  --arg cpu "$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" --arg node "$(node --version)" \
  --arg dnsmasq "$(dnsmasq --version | awk 'NR==1 {print $3}')" --arg dnsperf "$DNSPERF_VERSION" \
  --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --argjson seconds "$SECONDS_RUN" --argjson clients "$CLIENTS" --argjson outstanding "$OUTSTANDING" --argjson names "$NAMES" \
  '{section: "meta", date: $date, kernel: $kernel, cpus: $cpus, cpu: $cpu, node: $node, dnsmasq: $dnsmasq, dnsperf: $dnsperf,
    commit: $commit, seconds: $seconds, clients: $clients, outstanding: $outstanding, names: $names}' >>"$RUNS"

run_one() { # rate attribution(true|false)
  local rate=$1 attr=$2 port cfg
  port=$(free_port)
  cfg=$WORK/flowtel-$rate-$attr.yaml
  cat >"$cfg" <<EOF
receivers:
  ebpf_dns:
    collection_interval: 1s
    network_namespaces: [/run/netns/$NS_C]
    process_attribution: $attr
exporters:
  prometheus:
    endpoint: 127.0.0.1:$port
service:
  pipelines:
    metrics:
      receivers: [ebpf_dns]
      exporters: [prometheus]
EOF
  local alog=$OUTDIR/logs/agent-$rate-$attr.log
  node "$STAGE/bin/flowtel" run --config "$cfg" >"$OUTDIR/logs/agent-$rate-$attr.stdout" 2>"$alog" &
  AGENT_PID=$!
  wait_for_line "$alog" '"msg":"flowtel running"' 30 "$AGENT_PID" || die "flowtel did not start: see $alog"
  sleep 1
  (while kill -0 "$AGENT_PID" 2>/dev/null; do vm_kb "$AGENT_PID" VmRSS; sleep 0.5; done) >"$WORK/rss" 2>/dev/null &
  SAMPLER_PID=$!
  local la0 c0 d0 b0 s0 t0 t1 c1 d1 b1 s1 la1 out
  la0=$(loadavg)
  c0=$(cpu_ticks "$AGENT_PID")
  d0=$(cpu_ticks "$DNSMASQ_PID")
  b0=$(total_ticks)
  s0=$(prog_stats "$AGENT_PID")
  t0=$(now)
  ip netns exec "$NS_C" dnsperf -s "$IP_S" -d "$WORK/names.txt" -l "$SECONDS_RUN" -Q "$rate" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 \
    >"$OUTDIR/logs/dnsperf-$rate-$attr.out" 2>&1 || die "dnsperf failed: see $OUTDIR/logs/dnsperf-$rate-$attr.out"
  t1=$(now)
  c1=$(cpu_ticks "$AGENT_PID")
  d1=$(cpu_ticks "$DNSMASQ_PID")
  b1=$(total_ticks)
  la1=$(loadavg)
  # The agent may be behind (its backlog is bounded: 64 MiB queued, then the
  # capture ring): wait until it has counted every query dnsperf sent and its
  # counts hold still over three scrapes, or until they stop moving for 15 s
  # (then something was lost), at most 180 s. A failed scrape (the agent busy)
  # is no value.
  local sent_now prev="" cur="" stable=0 still=0 i q
  sent_now=$(awk '/Queries sent:/ {print $3}' "$OUTDIR/logs/dnsperf-$rate-$attr.out")
  local t_end
  t_end=$(now)
  for ((i = 0; i < 180; i++)); do
    sleep 1
    curl -fs --max-time 5 "http://127.0.0.1:$port/metrics" >"$WORK/metrics.try" 2>/dev/null || continue
    grep -q '^flowtel_dns_capture_packets' "$WORK/metrics.try" || continue
    mv "$WORK/metrics.try" "$WORK/metrics"
    q=$(series_sum "$WORK/metrics" dns_queries_total server_address=$IP_S)
    cur="$q $(series_sum "$WORK/metrics" dns_responses_total server_address=$IP_S)"
    if [[ $cur == "$prev" ]]; then stable=$((stable + 1)); still=$((still + 1)); else stable=0; still=0; fi
    prev=$cur
    ((q >= ${sent_now:-0} && stable >= 2)) && break
    ((still >= 15)) && break
  done
  local caught_up c2
  caught_up=$(awk -v a="$t_end" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
  c2=$(cpu_ticks "$AGENT_PID") # CPU until the counts were final: what the packets cost, backlog included
  cp "$WORK/metrics" "$OUTDIR/logs/metrics-$rate-$attr.txt"
  s1=$(prog_stats "$AGENT_PID")
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
  local hwm rss
  hwm=$(vm_kb "$AGENT_PID" VmHWM)
  rss=$(sort -n "$WORK/rss" | tail -1)
  stop_pid "$AGENT_PID" 15
  AGENT_PID=""
  local m=$WORK/metrics o=$OUTDIR/logs/dnsperf-$rate-$attr.out
  local sent completed lost qps
  sent=$(awk '/Queries sent:/ {print $3}' "$o")
  completed=$(awk '/Queries completed:/ {print $3}' "$o")
  lost=$(awk '/Queries lost:/ {print $3}' "$o")
  qps=$(awk '/Queries per second:/ {print $4}' "$o")
  local secs agent_cpu dnsmasq_cpu all_cpu
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
  agent_cpu=$(awk -v a="$c0" -v b="$c1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / s * 100}')
  local agent_cpu_s
  agent_cpu_s=$(awk -v a="$c0" -v b="$c2" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
  dnsmasq_cpu=$(awk -v a="$d0" -v b="$d1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / s * 100}')
  all_cpu=$(awk -v a="$b0" -v b="$b1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / s * 100}')
  jq -cn --argjson rate "$rate" --argjson attr "$attr" --argjson seconds "$secs" \
    --argjson sent "${sent:-0}" --argjson completed "${completed:-0}" --argjson lost "${lost:-0}" --argjson qps "${qps:-0}" \
    --argjson queries "$(series_sum "$m" dns_queries_total server_address=$IP_S)" \
    --argjson responses "$(series_sum "$m" dns_responses_total server_address=$IP_S)" \
    --argjson attributed "$(series_sum "$m" dns_queries_total server_address=$IP_S process_executable_name=dnsperf)" \
    --argjson latencies "$(series_sum "$m" dns_latency_us_count server_address=$IP_S)" \
    --argjson cap_packets "$(series_sum "$m" flowtel_dns_capture_packets_total)" \
    --argjson cap_drops "$(series_sum "$m" flowtel_dns_capture_drops_total)" \
    --argjson dropped "$(series_sum "$m" flowtel_dns_dropped_total)" \
    --argjson malformed "$(series_sum "$m" flowtel_dns_malformed_total)" \
    --argjson agent_cpu "$agent_cpu" --argjson agent_cpu_s "$agent_cpu_s" --argjson dnsmasq_cpu "$dnsmasq_cpu" --argjson all_cpu "$all_cpu" \
    --argjson rss "${rss:-0}" --argjson hwm "${hwm:-0}" --argjson la0 "$la0" --argjson la1 "$la1" \
    --argjson bpf0 "$s0" --argjson bpf1 "$s1" --argjson caught_up "$caught_up" \
    '{section: "dns", rate: $rate, attribution: $attr, seconds: $seconds,
      dnsperf: {sent: $sent, completed: $completed, lost: $lost, qps: $qps},
      agent: {queries: $queries, responses: $responses, attributed: $attributed, latencies: $latencies,
              capture_packets: $cap_packets, capture_drops: $cap_drops, dropped: $dropped, malformed: $malformed},
      agent_cpu_pct: $agent_cpu, agent_cpu_s: $agent_cpu_s, dnsmasq_cpu_pct: $dnsmasq_cpu, machine_busy_pct: $all_cpu, rss_max_kb: $rss, hwm_kb: $hwm,
      loadavg_before: $la0, loadavg_after: $la1, caught_up_s: $caught_up,
      bpf: ($bpf1 | with_entries(.value = {ns: (.value.ns - ($bpf0[.key].ns // 0)), cnt: (.value.cnt - ($bpf0[.key].cnt // 0))}))}' >>"$RUNS"
  log "$rate q/s (attribution $attr): dnsperf sent $sent, completed $completed; agent queries $(series_sum "$m" dns_queries_total server_address=$IP_S), responses $(series_sum "$m" dns_responses_total server_address=$IP_S), drops $(series_sum "$m" flowtel_dns_capture_drops_total); agent CPU ${agent_cpu}%; load ${la0} → ${la1}; counts final ${caught_up}s after the flood"
}

for rate in $RATES; do
  log "flood: $rate queries/s for ${SECONDS_RUN}s, process attribution on"
  run_one "$rate" true
done
if [[ $ATTR_OFF == 1 ]]; then
  last=${RATES##* }
  log "flood: $last queries/s for ${SECONDS_RUN}s, process attribution off"
  run_one "$last" false
fi

TABLE=$OUTDIR/table.md
node "$ROOT/bench/dns/render.mjs" "$RUNS" >"$TABLE"
cat "$TABLE"
if [[ $WRITE_DOCS == 1 ]]; then
  node "$ROOT/bench/dns/render.mjs" --insert "$DOC" "$TABLE"
  log "results written into $DOC (raw runs: $RUNS)"
fi
