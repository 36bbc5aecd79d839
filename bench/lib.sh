# Shared by the named benchmark suites (bench/suites/*.sh); sourced, not run.
#
# Gives: checks, a private copy of the build, the agent started and stopped
# per run (its own BPF programs found through /proc/PID/fdinfo), the kernel's
# per-program run time (kernel.bpf_stats_enabled=1), load average and CPU of
# other processes at each measurement, two network namespaces joined by a
# veth pair, free ports, and the result file: one JSON line per measured run
# in bench/.results/SUITE/runs.jsonl, rendered by bench/suites.mjs into
# docs/performance.md between <!-- bench:SUITE:begin --> and <!-- bench:SUITE:end -->.
#
# Network namespaces are named bn-* and use 10.91.0.0/16 – 10.95.0.0/16 only;
# traffic goes to 127.0.0.1 or between those namespaces, nowhere else.
# Everything started is stopped on exit (also on error or Ctrl-C), namespaces
# are deleted and the sysctl is restored.

set -euo pipefail
set -E

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/functions.sh
source "$BENCH/functions.sh"
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
SUITE=${SUITE:?SUITE must be set by the suite script}


require_tools() { # tool...
  local missing=() t
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (Debian: apt-get install iperf3 wrk nginx-light bpftool jq iproute2 util-linux curl clang gcc make libbpf-dev libelf-dev zlib1g-dev)"
}

[[ $(id -u) -eq 0 ]] || die "run as root (loads eBPF programs, creates network namespaces)"
[[ -r /sys/kernel/btf/vmlinux ]] || die "/sys/kernel/btf/vmlinux missing: the kernel has no BTF"
require_tools bpftool jq nstat ip curl node ss make gcc clang

OUTDIR=$BENCH/.results/$SUITE
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/logs"
RUNS=$OUTDIR/runs.jsonl
: >"$RUNS"
WORK=$(mktemp -d /tmp/flowtel-bench-"$SUITE".XXXXXX)
chmod 755 "$WORK"

AGENT_PID=""
SAMPLER_PID=""
EXTRA_PIDS=()
NETNS_LIST=()
STATS_OLD=$(cat /proc/sys/kernel/bpf_stats_enabled)


# Processes a suite starts in the background and must be stopped on exit.
track_pid() { EXTRA_PIDS+=("$1"); }

lib_cleanup() {
  local rc=$? p ns
  trap - EXIT INT TERM ERR
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID" 10 >/dev/null
  for p in "${EXTRA_PIDS[@]}"; do stop_pid "$p" 5 >/dev/null; done
  declare -F suite_cleanup >/dev/null && suite_cleanup
  for ns in "${NETNS_LIST[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  echo "$STATS_OLD" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap lib_cleanup EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM
trap 'rc=$?; log "error: \"$BASH_COMMAND\" failed (exit $rc) at line $LINENO"' ERR

# ------------------------------------------------------------------ build ---
build_all() {
  if [[ ${BENCH_BUILD:-auto} == 1 || ! -f $ROOT/dist/src/cli/main.js || ! -f $ROOT/bpf/.output/flowtel_tcp.bpf.o ]]; then
    log "building flowtel (npm run build)"
    (cd "$ROOT" && npm run build >"$OUTDIR/build.log" 2>&1) || die "npm run build failed: see $OUTDIR/build.log"
  fi
  local d
  for d in "$@"; do
    make -s -C "$BENCH/$d" >"$OUTDIR/$d-build.log" 2>&1 || die "building bench/$d failed: see $OUTDIR/$d-build.log"
  done
  # A private copy of the build: a rebuild of the work tree meanwhile must not change what is measured.
  STAGE=$WORK/flowtel
  mkdir -p "$STAGE/bpf/.output" "$STAGE/native/build/Release"
  cp -a "$ROOT/package.json" "$ROOT/bin" "$ROOT/dist" "$STAGE/"
  cp "$ROOT"/bpf/.output/*.bpf.o "$STAGE/bpf/.output/"
  cp "$ROOT"/native/build/Release/*.node "$STAGE/native/build/Release/"
  cp "$ROOT/native/binding.gyp" "$STAGE/native/"
  ln -s "$ROOT/node_modules" "$STAGE/node_modules"
  node "$STAGE/bin/flowtel" version >/dev/null || die "the build in $ROOT does not run (a rebuild in progress?): try again"
}
CHURN_BIN=$BENCH/churn/.output/churn
LATENCY_BIN=$BENCH/latency/.output/latency

# ---------------------------------------------------------------- helpers ---
CLK_TCK=$(getconf CLK_TCK)
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
loadavg() { awk '{print $1}' /proc/loadavg; }
cpu_pct() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / s * 100}'; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }


# --- CPU of everyone else (processes that are neither ours nor kernel threads), in % of one core.
# measure_begin / measure_end: the load around one measurement. measure_end sets
# M_SECONDS and M_LOAD, JSON {loadavg, foreign_cpu_pct, other_tracers}: the larger
# 1-min load average of the two ends, the CPU other processes used (% of one
# core), and BPF tracing programs of another flowtel or floor (another helper's
# agent or test) loaded meanwhile: they run in every configuration.
measure_begin() { M_LOAD0=$(loadavg); M_TR0=$(other_tracers); proc_snapshot >"$WORK/ps0"; M_T0=$(now); }
measure_end() {
  local t1 l1 tr1
  t1=$(now)
  proc_snapshot >"$WORK/ps1"
  l1=$(loadavg)
  tr1=$(other_tracers)
  M_SECONDS=$(elapsed "$M_T0" "$t1")
  M_LOAD=$(jq -cn --argjson l0 "$M_LOAD0" --argjson l1 "$l1" --argjson f "$(foreign_cpu "$WORK/ps0" "$WORK/ps1" "$M_SECONDS")" \
    --argjson t0 "$M_TR0" --argjson t1 "$tr1" '{loadavg: ([$l0, $l1] | max), foreign_cpu_pct: $f, other_tracers: ([$t0, $t1] | max)}')
}

# --- BPF programs of one process, their stats, and the maps it holds.
fd_ids() { # pid prog|map -> JSON array of ids held by that process
  { grep -h "^$2_id:" /proc/"$1"/fdinfo/* 2>/dev/null || true; } | awk '{print $2}' | sort -un | jq -cs .
}
map_memlock() { # ids-json -> {total: bytes, maps: {name: bytes}}
  bpftool map show --json | jq -c --argjson ids "$1" \
    'map(select(.id as $i | $ids | index($i))) | {total: (map(.bytes_memlock // 0) | add // 0), maps: (map({key: .name, value: (.bytes_memlock // 0)}) | from_entries)}'
}
other_tracers() { # flowtel-like programs loaded that are not our agent's
  bpftool prog show --json | jq --argjson ours "${AGENT_PROGS:-[]}" '[.[] | select(.name | IN("handle_set_state", "floor_set_state")) | select(.id as $i | $ours | index($i) | not)] | length'
}
wait_no_other_agent() { # another flowtel (a test run?) would be measured in every configuration
  local i limit=${BENCH_QUIET_WAIT:-60}
  for ((i = 0; i < limit; i += 2)); do
    (($(flowtel_like_progs) == 0)) && return 0
    ((i == 0)) && log "another flowtel or floor is loaded (bpftool prog show): waiting up to ${limit}s for it to exit"
    sleep 2
  done
  log "warning: another flowtel-like tracer is still loaded: measuring anyway (its programs are not counted as ours)"
}


# ------------------------------------------------------------------ agent ---
PROM_PORT=""
AGENT_STARTS=0
AGENT_PROGS="[]"
AGENT_MAPS="[]"
AGENT_LOG=""
write_agent_config() { # interval
  PROM_PORT=$(free_port)
  AGENT_CFG=$WORK/flowtel.yaml
  cat >"$AGENT_CFG" <<EOF
# flowtel as the benchmarks run it: every TCP and UDP flow, collected every $1.
receivers:
  ebpf_tcp:
    collection_interval: $1
exporters:
  prometheus:
    endpoint: 127.0.0.1:$PROM_PORT
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [prometheus]
EOF
}
start_agent() { # start flowtel, wait until attached; sets AGENT_PID, AGENT_PROGS, AGENT_MAPS
  AGENT_STARTS=$((AGENT_STARTS + 1))
  AGENT_LOG=$OUTDIR/logs/agent-$AGENT_STARTS.log
  # bin/flowtel as installed (its shebang sets node's flags), or `node BENCH_NODE_ARGS bin/flowtel`
  # (e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"; the shebang's flags are then not applied).
  local cmd=("$STAGE/bin/flowtel")
  # shellcheck disable=SC2206 # a list of arguments
  [[ -n ${BENCH_NODE_ARGS:-} ]] && cmd=(node $BENCH_NODE_ARGS "$STAGE/bin/flowtel")
  # shellcheck disable=SC2086 # BENCH_AGENT_ARGS is a list of arguments
  "${cmd[@]}" run --config "$AGENT_CFG" ${BENCH_AGENT_ARGS:-} >"$OUTDIR/logs/agent-$AGENT_STARTS.stdout" 2>"$AGENT_LOG" &
  AGENT_PID=$!
  wait_for_line "$AGENT_LOG" '"msg":"flowtel running"' 60 "$AGENT_PID" || die "flowtel did not start: see $AGENT_LOG"
  AGENT_PROGS=$(fd_ids "$AGENT_PID" prog)
  AGENT_MAPS=$(fd_ids "$AGENT_PID" map)
  [[ $AGENT_PROGS != "[]" ]] || die "flowtel started but holds no BPF program: see $AGENT_LOG"
}
AGENT_KILLED=0
stop_agent() { # sets AGENT_KILLED=1 when SIGTERM was not enough
  local note i left
  note=$(stop_pid "$AGENT_PID" 15)
  AGENT_PID=""
  AGENT_KILLED=0
  [[ -z $note ]] || { AGENT_KILLED=1; log "warning: flowtel did not exit within 15 s of SIGTERM: killed (see $AGENT_LOG)"; }
  for ((i = 0; i < 50; i++)); do
    left=$(bpftool prog show --json | jq --argjson ids "$AGENT_PROGS" '[.[] | select(.id as $i | $ids | index($i))] | length')
    ((left == 0)) && break
    sleep 0.1
  done
  ((left == 0)) || log "warning: $left BPF programs of flowtel still loaded after it exited"
  AGENT_PROGS="[]"
}
scrape() { curl -fs --max-time "${1:-10}" "http://127.0.0.1:$PROM_PORT/metrics" || true; }
# Sum of a metric's series whose labels contain every given label="value".
series_sum() { # file metric label=value...
  local file=$1 metric=$2
  shift 2
  awk -v m="$metric" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    index($0, m "{") == 1 || index($0, m " ") == 1 {
      ok = 1
      for (i = 1; i <= n; i++) { split(w[i], kv, "="); if (index($0, kv[1] "=\"" kv[2] "\"") == 0) ok = 0 }
      if (ok) s += $NF
    }
    END { printf "%.0f\n", s }' "$file"
}
# Collections and their total time (flowtel_collection_duration_us histogram): "count sum_us".
collection_stats() { echo "$(series_sum "$1" flowtel_collection_duration_us_count)" "$(series_sum "$1" flowtel_collection_duration_us_sum)"; }

# ------------------------------------------------------------- namespaces ---
# make_netns_pair C S C_ADDR S_ADDR: two namespaces joined by a veth pair (/24).
make_netns_pair() {
  local c=$1 s=$2 ca=$3 sa=$4 ns
  for ns in "$c" "$s"; do
    ! ip netns list | grep -qw "^$ns" || die "network namespace $ns exists (a previous run?): ip netns del $ns"
  done
  NETNS_LIST+=("$c" "$s")
  ip netns add "$c"
  ip netns add "$s"
  ip link add "${c}0" netns "$c" type veth peer name "${s}0" netns "$s"
  ip -n "$c" link set lo up
  ip -n "$s" link set lo up
  ip -n "$c" addr add "$ca/24" dev "${c}0"
  ip -n "$s" addr add "$sa/24" dev "${s}0"
  ip -n "$c" link set "${c}0" up
  ip -n "$s" link set "${s}0" up
  ip netns exec "$c" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
}
nst() { ip netns exec "$1" nstat -asz "$2" | awk -v k="$2" '$1 == k {print $2}'; }

# ------------------------------------------------------------------ nginx ---
# start_nginx NAME LISTEN [NETNS]: one worker, a BENCH_BODY_BYTES page, access log off.
start_nginx() {
  local name=$1 listen=$2 ns=${3:-} ng=$WORK/nginx-$1 i
  mkdir -p "$ng/www" "$ng/tmp" "$ng/logs"
  head -c "${BENCH_BODY_BYTES:-1024}" /dev/zero | tr '\0' 'x' >"$ng/www/index.html"
  chmod -R a+rX "$ng"
  cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 65;
  client_body_temp_path $ng/tmp;
  proxy_temp_path $ng/tmp;
  fastcgi_temp_path $ng/tmp;
  uwsgi_temp_path $ng/tmp;
  scgi_temp_path $ng/tmp;
  server {
    listen $listen backlog=4096;
    root $ng/www;
  }
}
EOF
  local pre=()
  [[ -n $ns ]] && pre=(ip netns exec "$ns")
  "${pre[@]}" nginx -p "$ng" -c "$ng/nginx.conf" 2>>"$OUTDIR/nginx-$name.log" &
  track_pid $!
  for ((i = 0; i < 50; i++)); do
    "${pre[@]}" curl -fs -o /dev/null "http://$listen/" && return 0
    sleep 0.1
  done
  die "nginx $name does not answer on $listen: see $ng/logs/error.log"
}

# ----------------------------------------------------------------- output ---
record() { printf '%s\n' "$1" >>"$RUNS"; } # one JSON line
agent_node_flags() { # the node flags the agent runs with: those of bin/flowtel's shebang (`#!/usr/bin/env -S node FLAGS`)
  sed -n '1s/^#!.*env -S node//p' "$STAGE/bin/flowtel"
}
write_meta() { # extra-json
  jq -cn --arg suite "$SUITE" --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" \
    --arg cpu "$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" --arg node "$(node --version)" \
    --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg dirty "$(git -C "$ROOT" status --porcelain -- src bpf native 2>/dev/null | grep -q . && echo 1 || echo 0)" \
    --arg cmd "${BENCH_COMMAND:-bash bench/run.sh $SUITE}" --arg env "$(env | grep -E '^BENCH_' | grep -v '^BENCH_COMMAND=' | sort | tr '\n' ' ' || true)" \
    --argjson extra "${1:-{\}}" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson stats "$(cat /proc/sys/kernel/bpf_stats_enabled)" \
    '{section: "meta", suite: $suite, date: $date, kernel: $kernel, cpus: $cpus, cpu: $cpu, node: $node, commit: $commit,
      dirty: ($dirty == "1"), command: $cmd, env: $env, loadavg_at_start: $load, bpf_stats: $stats} + $extra' >>"$RUNS"
}
publish() { # render the suite's table, print it, and put it into docs/performance.md
  local table=$OUTDIR/table.md
  node "$BENCH/suites.mjs" render "$SUITE" "$RUNS" >"$table"
  cat "$table"
  if [[ $WRITE_DOCS == 1 ]]; then
    node "$BENCH/suites.mjs" insert "$SUITE" "$DOC" "$table"
    log "results written into $DOC (raw runs: $RUNS)"
  fi
}

# Per-program run time: suite 7 reads it from suites 1-3, so it is on for them
# (BENCH_BPF_STATS=0 for the pure tax). It adds two clock reads to every program
# run, on the "with flowtel" side only: ~170 ns a run on the machine of the
# published tables, ~20 ms of a walk of 130k sockets. The other suites run as a
# user's kernel does by default: off.
case $SUITE in throughput | latency | churn-ladder) BPF_STATS=${BENCH_BPF_STATS:-1} ;; *) BPF_STATS=${BENCH_BPF_STATS:-0} ;; esac
echo "$BPF_STATS" >/proc/sys/kernel/bpf_stats_enabled
