#!/usr/bin/env bash
# flowtel overhead benchmark: `bash bench/run.sh overhead` (root; ~8 minutes with the defaults).
#
# Measures, in one run, interleaving "without agent", "with flowtel" and "with
# the floor tracer" (bench/floor: the cheapest C tracer of the same hook):
#   1. loopback HTTP throughput: wrk against nginx on 127.0.0.1, keep-alive and
#      connection-per-request (Connection: close); medians over BENCH_REPS;
#   2. the agent's CPU (/proc/PID/stat) and RSS (/proc/PID/status) under that load;
#   3. BPF run time per program run (kernel.bpf_stats_enabled=1, bpftool);
#   4. connection churn between two network namespaces at BENCH_CHURN_RATE
#      connections/s, with the kernel's own counters (nstat) and the client's
#      own count as ground truth for tcp_connections_opened/closed.
# Prints a markdown table and writes it into docs/performance.md between the
# markers. Raw per-run results: bench/.results/last/ (runs.jsonl, logs).
#
# Environment (defaults in brackets):
#   BENCH_REPS [9]            repetitions of each (workload, configuration)
#   BENCH_HTTP_SECONDS [5]    seconds of one measured wrk run (after BENCH_WARMUP [1] s unmeasured)
#   BENCH_DURATION [30]       seconds of the connection churn run
#   BENCH_CHURN_RATE [10000]  connections per second opened by the churn client
#   BENCH_CONNECTIONS [32]    wrk connections
#   BENCH_BODY_BYTES [1024]   size of the page nginx serves
#   BENCH_HTTP_MODES ["keepalive close"], BENCH_SKIP_CHURN [0], BENCH_SKIP_HTTP [0]
#   BENCH_HTTP_PORT [18080], BENCH_CHURN_PORT [18090], BENCH_PROM_PORT [19477]
#   BENCH_WRITE_DOCS [1]      0: print the table only, leave docs/performance.md alone
#   BENCH_AGENT_ARGS []       more arguments for `flowtel run`, e.g. "--set receivers.ebpf_tcp.udp=false"
#   BENCH_QUIET_WAIT [120]    seconds to wait, before each run, for other load on the machine to stop
#   BENCH_QUIET_CPU [10]      "other load": other processes above this % of one core, or foreign BPF programs
#   BENCH_RETRIES [2]         a loopback run disturbed by other load is done again, at most this many times
#   BENCH_BPF_STATS [1]       0: measure throughput with kernel.bpf_stats_enabled=0 (no per-program run times then)
#   BENCH_BUILD [auto]        1: always `npm run build` first; auto: only when dist/ is missing
# Quick look (about 2 minutes): BENCH_REPS=3 BENCH_HTTP_SECONDS=3 BENCH_DURATION=10 bash bench/run.sh overhead
#
# Traffic goes only to 127.0.0.1 and to two network namespaces this script
# creates (10.203.0.1 <-> 10.203.0.2 over a veth pair). Everything it starts,
# it stops; the namespaces are deleted and the sysctl it sets is restored on
# exit, also on error or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/functions.sh
source "$BENCH/functions.sh"
REPS=${BENCH_REPS:-9}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
CHURN_SECONDS=${BENCH_DURATION:-30}
CHURN_RATE=${BENCH_CHURN_RATE:-10000}
CONNS=${BENCH_CONNECTIONS:-32}
BODY_BYTES=${BENCH_BODY_BYTES:-1024}
HTTP_MODES=${BENCH_HTTP_MODES:-keepalive close}
HTTP_PORT=${BENCH_HTTP_PORT:-18080}
CHURN_PORT=${BENCH_CHURN_PORT:-18090}
PROM_PORT=${BENCH_PROM_PORT:-19477}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
AGENT_ARGS=${BENCH_AGENT_ARGS:-}
RETRIES=${BENCH_RETRIES:-2}
QUIET_CPU=${BENCH_QUIET_CPU:-10}
DOC=$ROOT/docs/performance.md

NS_C=ftb-c
NS_S=ftb-s
IP_C=10.203.0.1
IP_S=10.203.0.2


# ---------------------------------------------------------------- checks ----
[[ $(id -u) -eq 0 ]] || die "run as root (loads eBPF programs, creates network namespaces)"
[[ -r /sys/kernel/btf/vmlinux ]] || die "/sys/kernel/btf/vmlinux missing: the kernel has no BTF"
missing=()
for t in wrk nginx bpftool jq nstat ip taskset curl clang gcc make node ss; do
  command -v "$t" >/dev/null || missing+=("$t")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (Debian: apt-get install wrk nginx-light bpftool jq iproute2 util-linux curl clang gcc make libbpf-dev libelf-dev zlib1g-dev)"
(($(nproc) >= 2)) || die "needs at least 2 CPUs (wrk and nginx are pinned to CPUs 0 and 1)"
for p in "$HTTP_PORT" "$PROM_PORT"; do
  [[ -z $(ss -Hltn "sport = :$p") ]] || die "port $p is in use on this host: set BENCH_HTTP_PORT / BENCH_PROM_PORT"
done
for ns in "$NS_C" "$NS_S"; do
  ! ip netns list | grep -qw "^$ns" || die "network namespace $ns exists (a previous run?): ip netns del $ns"
done

# ------------------------------------------------------------------ state ---
OUTDIR=$BENCH/.results/last
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/logs"
RUNS=$OUTDIR/runs.jsonl
: >"$RUNS"
WORK=$(mktemp -d /tmp/flowtel-bench.XXXXXX)
chmod 755 "$WORK"

AGENT_PID=""
FLOOR_PID=""
NGINX_PID=""
CHURN_SRV_PID=""
SAMPLER_PID=""
NETNS_MADE=0
STATS_OLD=$(cat /proc/sys/kernel/bpf_stats_enabled)


cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID" 10 >/dev/null
  [[ -n $FLOOR_PID ]] && stop_pid "$FLOOR_PID" 5 >/dev/null
  [[ -n $CHURN_SRV_PID ]] && stop_pid "$CHURN_SRV_PID" 5 >/dev/null
  [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID" 5 >/dev/null
  if ((NETNS_MADE)); then
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true
  fi
  echo "$STATS_OLD" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM
trap 'rc=$?; log "error: \"$BASH_COMMAND\" failed (exit $rc) at line $LINENO"' ERR
set -E

# ------------------------------------------------------------------ build ---
if [[ ${BENCH_BUILD:-auto} == 1 || ! -f $ROOT/dist/src/cli/main.js || ! -f $ROOT/bpf/.output/flowtel_tcp.bpf.o ]]; then
  log "building flowtel (npm run build)"
  (cd "$ROOT" && npm run build >"$OUTDIR/build.log" 2>&1) || die "npm run build failed: see $OUTDIR/build.log"
fi
make -s -C "$BENCH/floor" >"$OUTDIR/floor-build.log" 2>&1 || die "building bench/floor failed: see $OUTDIR/floor-build.log"
make -s -C "$BENCH/churn" >"$OUTDIR/churn-build.log" 2>&1 || die "building bench/churn failed: see $OUTDIR/churn-build.log"
# Run a private copy of the build: a rebuild of the work tree during the
# benchmark (npm run build elsewhere) must not change what is measured.
STAGE=$WORK/flowtel
mkdir -p "$STAGE/bpf/.output" "$STAGE/native/build/Release"
cp -a "$ROOT/package.json" "$ROOT/bin" "$ROOT/dist" "$STAGE/"
cp "$ROOT"/bpf/.output/*.bpf.o "$STAGE/bpf/.output/"
cp "$ROOT"/native/build/Release/*.node "$STAGE/native/build/Release/"
cp "$ROOT/native/binding.gyp" "$STAGE/native/" # the addon finds its package root by it
ln -s "$ROOT/node_modules" "$STAGE/node_modules"
node "$STAGE/bin/flowtel" version >/dev/null || die "the build in $ROOT does not run (a rebuild in progress?): try again"
FLOOR_BIN=$BENCH/floor/.output/floor
CHURN_BIN=$BENCH/churn/.output/churn

# ---------------------------------------------------------------- helpers ---
CLK_TCK=$(getconf CLK_TCK)


prog_ids() { bpftool prog show --json | jq -c '[.[].id]'; }

# --- the machine is not always ours alone: measure what others do meanwhile.
BASE_PROGS="[]"
# BPF programs loaded that were not there at the start and are not the tracer's under test.
foreign_progs() {
  bpftool prog show --json | jq --argjson base "$BASE_PROGS" --argjson ours "${TRACER_IDS:-[]}" '[.[].id] - $base - $ours | length'
}
# Wait (at most QUIET_WAIT s in all per run) until nobody else loads the
# machine: no foreign BPF programs, other processes under QUIET_CPU % of a core.
disturbed() { # foreign-cpu% foreign-programs
  awk -v c="$1" -v p="$2" -v m="$QUIET_CPU" 'BEGIN { exit !(c >= m || p > 0) }'
}
QUIET_NOTE=""
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) fp fc said=0
  QUIET_NOTE=""
  while :; do
    fp=$(foreign_progs)
    proc_snapshot >"$WORK/ps0"
    sleep 0.5
    proc_snapshot >"$WORK/ps1"
    fc=$(foreign_cpu "$WORK/ps0" "$WORK/ps1" 0.5)
    if ((fp == 0)) && awk -v c="$fc" -v m="$QUIET_CPU" 'BEGIN { exit !(c < m) }'; then
      ((said)) && log "quiet again"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      QUIET_NOTE="not quiet"
      log "warning: still not quiet after ${QUIET_WAIT}s (other processes ${fc}% CPU, $fp foreign BPF programs): measuring anyway, the run is flagged"
      return 0
    fi
    ((said)) || log "waiting for the machine to be quiet: other processes use ${fc}% CPU, $fp foreign BPF programs loaded"
    said=1
    sleep 2
  done
}


AGENT_CFG=$WORK/flowtel.yaml
cat >"$AGENT_CFG" <<EOF
# flowtel as the benchmark runs it: every TCP and UDP flow, collected every second.
receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:$PROM_PORT
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [prometheus]
EOF

TRACER_IDS="[]"
TRACER_LOG=""
TRACER_STARTS=0
FLOOR_OUT=""
start_tracer() { # agent|floor: start it, wait until attached; sets TRACER_IDS (its BPF programs)
  local kind=$1
  TRACER_STARTS=$((TRACER_STARTS + 1))
  if [[ $kind == agent ]]; then
    # One log per start: readiness is this agent's own "flowtel running" line.
    TRACER_LOG=$OUTDIR/logs/agent-$TRACER_STARTS.log
    # As installed: bin/flowtel's shebang sets node's flags (a plain `node bin/flowtel` would drop them).
    # shellcheck disable=SC2086 # BENCH_AGENT_ARGS is a list of arguments
    "$STAGE/bin/flowtel" run --config "$AGENT_CFG" $AGENT_ARGS >"$OUTDIR/logs/agent-$TRACER_STARTS.stdout" 2>"$TRACER_LOG" &
    AGENT_PID=$!
    wait_for_line "$TRACER_LOG" '"msg":"flowtel running"' 30 "$AGENT_PID" ||
      die "flowtel did not start: see $TRACER_LOG"
  else
    TRACER_LOG=$OUTDIR/logs/floor-$TRACER_STARTS.log
    FLOOR_OUT=$OUTDIR/logs/floor-$TRACER_STARTS.stdout # a new file each start: no stale "ready"
    "$FLOOR_BIN" >"$FLOOR_OUT" 2>"$TRACER_LOG" &
    FLOOR_PID=$!
    wait_for_line "$FLOOR_OUT" 'floor: ready' 30 "$FLOOR_PID" || die "floor did not start: see $TRACER_LOG"
  fi
  # Its programs: the BPF program fds it holds (/proc/PID/fdinfo), whoever else loads programs meanwhile.
  TRACER_IDS=$({ grep -h '^prog_id:' /proc/"$(tracer_pid "$kind")"/fdinfo/* 2>/dev/null || true; } | awk '{print $2}' | sort -un | jq -cs .)
  [[ $TRACER_IDS != "[]" ]] || die "$kind started but no new BPF program is loaded: see $TRACER_LOG"
}
tracer_pid() { [[ $1 == agent ]] && echo "$AGENT_PID" || echo "$FLOOR_PID"; }
STOP_NOTE=""
stop_tracer() { # agent|floor; sets STOP_NOTE ("kill" when SIGTERM was not enough)
  if [[ $1 == agent ]]; then
    STOP_NOTE=$(stop_pid "$AGENT_PID" 15)
    AGENT_PID=""
  else
    STOP_NOTE=$(stop_pid "$FLOOR_PID" 5)
    FLOOR_PID=""
  fi
  [[ -z $STOP_NOTE ]] || log "warning: $1 did not exit within 15 s of SIGTERM: killed (see $TRACER_LOG)"
  # Its programs must be gone (detached and freed) before the next run.
  local i left
  for ((i = 0; i < 50; i++)); do
    left=$(bpftool prog show --json | jq --argjson ids "$TRACER_IDS" '[.[] | select(.id as $i | $ids | index($i))] | length')
    ((left == 0)) && break
    sleep 0.1
  done
  ((left == 0)) || log "warning: $left BPF programs of $1 still loaded after it exited"
  TRACER_IDS="[]"
}

# ------------------------------------------------------------ bpf stats -----
echo "${BENCH_BPF_STATS:-1}" >/proc/sys/kernel/bpf_stats_enabled

# Another flowtel (a test run?) would be measured in every configuration: wait for it to go.
for ((i = 0; i < QUIET_WAIT; i += 2)); do
  (($(flowtel_like_progs) == 0)) && break
  ((i == 0)) && log "another flowtel or floor is loaded (bpftool prog show): waiting up to ${QUIET_WAIT}s for it to exit"
  sleep 2
done
(($(flowtel_like_progs) == 0)) || log "warning: another flowtel-like tracer is still loaded: every run will be flagged"
BASE_PROGS=$(bpftool prog show --json | jq -c '[.[] | select(.name | IN("handle_set_state", "udp_egress", "udp_ingress", "floor_set_state") | not) | .id]')

{
  jq -cn --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" \
    --arg cpu "$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" \
    --arg nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')" --arg wrk "$({ wrk -v 2>&1 || true; } | awk 'NR==1{print $2}')" \
    --arg node "$(node --version)" --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg dirty "$(git -C "$ROOT" status --porcelain -- src bpf native 2>/dev/null | grep -q . && echo 1 || echo 0)" \
    --argjson reps "$REPS" --argjson http_s "$HTTP_SECONDS" --argjson warmup "$WARMUP" --argjson conns "$CONNS" \
    --argjson body "$BODY_BYTES" --argjson churn_s "$CHURN_SECONDS" --argjson churn_rate "$CHURN_RATE" \
    --argjson quiet_cpu "$QUIET_CPU" --arg agent_args "$AGENT_ARGS" \
    '{section: "meta", date: $date, kernel: $kernel, cpus: $cpus, cpu: $cpu, nginx: $nginx, wrk: $wrk, node: $node,
      commit: $commit, dirty: ($dirty == "1"), reps: $reps, http_seconds: $http_s, warmup: $warmup, connections: $conns,
      body_bytes: $body, churn_seconds: $churn_s, churn_rate: $churn_rate, quiet_cpu: $quiet_cpu, agent_args: $agent_args}'
} >>"$RUNS"

# ---------------------------------------------------- 1-3: loopback HTTP ----
if [[ ${BENCH_SKIP_HTTP:-0} != 1 ]]; then
  NG=$WORK/nginx
  mkdir -p "$NG/www" "$NG/tmp" "$NG/logs"
  head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$NG/www/index.html"
  chmod -R a+rX "$NG"
  cat >"$NG/nginx.conf" <<EOF
# One worker, pinned to CPU 1 (wrk runs on CPU 0); flowtel and the floor are not pinned.
worker_processes 1;
worker_cpu_affinity 10;
daemon off;
master_process on;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 65;
  client_body_temp_path $NG/tmp;
  proxy_temp_path $NG/tmp;
  fastcgi_temp_path $NG/tmp;
  uwsgi_temp_path $NG/tmp;
  scgi_temp_path $NG/tmp;
  server {
    listen 127.0.0.1:$HTTP_PORT backlog=4096;
    root $NG/www;
  }
}
EOF
  nginx -p "$NG" -c "$NG/nginx.conf" -t >"$OUTDIR/nginx-t.log" 2>&1 || die "nginx config test failed: see $OUTDIR/nginx-t.log"
  nginx -p "$NG" -c "$NG/nginx.conf" 2>>"$OUTDIR/nginx.log" &
  NGINX_PID=$!
  for ((i = 0; i < 50; i++)); do
    curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/" && break
    sleep 0.1
  done
  curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/" || die "nginx does not answer on 127.0.0.1:$HTTP_PORT: see $NG/logs/error.log"
  URL=http://127.0.0.1:$HTTP_PORT/

  wrk_run() { # mode seconds outfile
    local hdr=()
    [[ $1 == close ]] && hdr=(-H 'Connection: close')
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$2"s "${hdr[@]}" "$URL" >"$3" 2>&1 || true
  }

  configs=(off agent floor)
  log "loopback HTTP: ${REPS} reps x (${HTTP_MODES}) x (off agent floor), ${HTTP_SECONDS}s each after ${WARMUP}s warm-up"
  for ((rep = 1; rep <= REPS; rep++)); do
    for mode in $HTTP_MODES; do
      # Rotate the order each repetition so slow drifts of the machine do not favour one configuration.
      shift_by=$rep
      [[ $mode == close ]] && shift_by=$((rep + 1))
      for ((k = 0; k < 3; k++)); do
        cfg=${configs[$(((k + shift_by) % 3))]}
        # A run that other load disturbed is done again (BENCH_RETRIES times at most); the last one counts.
        for ((attempt = 0; ; attempt++)); do
          wait_quiet
          pid=""
          if [[ $cfg != off ]]; then
            start_tracer "$cfg"
            pid=$(tracer_pid "$cfg")
          fi
          wrk_run "$mode" "$WARMUP" /dev/null
          s0="{}"
          [[ -n $pid ]] && s0=$(prog_stats "$TRACER_IDS")
          c0=0
          [[ -n $pid ]] && { c0=$(cpu_ticks "$pid"); start_sampler "$pid" "$WORK/rss"; }
          fp0=$(foreign_progs)
          proc_snapshot >"$WORK/ps0"
          t0=$(now)
          wrk_run "$mode" "$HTTP_SECONDS" "$WORK/wrk.out"
          t1=$(now)
          proc_snapshot >"$WORK/ps1"
          fp1=$(foreign_progs)
          fcpu=$(foreign_cpu "$WORK/ps0" "$WORK/ps1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
          fprogs=$((fp0 > fp1 ? fp0 : fp1))
          cpu=0 rss=0 hwm=0 bpf="{}"
          if [[ -n $pid ]]; then
            c1=$(cpu_ticks "$pid")
            s1=$(prog_stats "$TRACER_IDS")
            stop_sampler
            cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / (t1 - t0) * 100}')
            rss=$(max_of "$WORK/rss")
            hwm=$(vm_kb "$pid" VmHWM)
            bpf=$(stats_delta "$s0" "$s1")
            stop_tracer "$cfg"
          fi
          rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
          reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
          errs=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10} /Non-2xx/ {print $NF}' "$WORK/wrk.out" | awk '{s += $1} END {print s + 0}')
          [[ -n $rps ]] || { cat "$WORK/wrk.out" >&2; die "wrk gave no result"; }
          jq -cn --arg mode "$mode" --arg cfg "$cfg" --argjson rep "$rep" --argjson rps "$rps" --argjson reqs "${reqs:-0}" \
            --argjson errs "$errs" --argjson cpu "$cpu" --argjson rss "$rss" --argjson hwm "${hwm:-0}" --argjson bpf "$bpf" \
            --arg killed "$STOP_NOTE" --argjson fcpu "$fcpu" --argjson fprogs "$fprogs" --arg quiet "$QUIET_NOTE" \
            --argjson attempt "$attempt" --argjson retries "$RETRIES" --argjson quiet_cpu "$QUIET_CPU" \
            '{section: "http", mode: $mode, config: $cfg, rep: $rep, rps: $rps, requests: $reqs, errors: $errs,
              cpu_pct: $cpu, rss_max_kb: $rss, hwm_kb: $hwm, bpf: $bpf, killed: ($killed != ""),
              foreign_cpu_pct: $fcpu, foreign_progs: $fprogs, quiet_timeout: ($quiet != ""), attempt: $attempt,
              discarded: ($attempt < $retries and ($fcpu >= $quiet_cpu or $fprogs > 0))}' >>"$RUNS"
          STOP_NOTE=""
          log "rep $rep $mode $cfg: $rps req/s${pid:+, cpu ${cpu}%, rss $((rss / 1024)) MB}; others: ${fcpu}% CPU, $fprogs BPF programs"
          if ((attempt < RETRIES)) && disturbed "$fcpu" "$fprogs"; then
            log "rep $rep $mode $cfg disturbed by other load (${fcpu}% CPU, $fprogs BPF programs): once more"
            continue
          fi
          break
        done
      done
    done
  done
  stop_pid "$NGINX_PID" 5 >/dev/null
  NGINX_PID=""
fi

# ------------------------------------------------- 5: churn, ground truth ----
if [[ ${BENCH_SKIP_CHURN:-0} != 1 ]]; then
  log "churn: namespaces $NS_C ($IP_C) <-> $NS_S ($IP_S), ${CHURN_RATE} connections/s for ${CHURN_SECONDS}s"
  NETNS_MADE=1
  ip netns add "$NS_C"
  ip netns add "$NS_S"
  ip link add ftbc0 netns "$NS_C" type veth peer name ftbs0 netns "$NS_S"
  ip -n "$NS_C" link set lo up
  ip -n "$NS_S" link set lo up
  ip -n "$NS_C" addr add "$IP_C/24" dev ftbc0
  ip -n "$NS_S" addr add "$IP_S/24" dev ftbs0
  ip -n "$NS_C" link set ftbc0 up
  ip -n "$NS_S" link set ftbs0 up
  # The server closes first, so ports are free at once on the client; widen its range anyway.
  ip netns exec "$NS_C" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"

  ip netns exec "$NS_S" "$CHURN_BIN" server "$CHURN_PORT" >"$WORK/churn-server.out" 2>>"$OUTDIR/churn-server.log" &
  CHURN_SRV_PID=$!
  wait_for_line "$WORK/churn-server.out" 'churn: ready' 10 "$CHURN_SRV_PID" || die "churn server did not start"

  nst() { ip netns exec "$1" nstat -asz "$2" | awk -v k="$2" '$1 == k {print $2}'; }
  scrape() { curl -fs --max-time 5 "http://127.0.0.1:$PROM_PORT/metrics" || true; }
  # Sum of a metric's series whose labels contain every given label="value".
  series_sum() { # file metric label=value...
    local file=$1 metric=$2
    shift 2
    awk -v m="$metric" -v want="$*" '
      BEGIN { n = split(want, w, " ") }
      index($0, m "{") == 1 {
        ok = 1
        for (i = 1; i <= n; i++) { split(w[i], kv, "="); if (index($0, kv[1] "=\"" kv[2] "\"") == 0) ok = 0 }
        if (ok) s += $NF
      }
      END { printf "%d\n", s }' "$file"
  }
  agent_counts() { # file -> "opened_out closed_out opened_in closed_in failures dropped"
    local f=$1
    echo "$(series_sum "$f" tcp_connections_opened_total flow_direction=outgoing destination_address=$IP_S destination_port=$CHURN_PORT)" \
      "$(series_sum "$f" tcp_connections_closed_total flow_direction=outgoing destination_address=$IP_S destination_port=$CHURN_PORT)" \
      "$(series_sum "$f" tcp_connections_opened_total flow_direction=incoming source_address=$IP_S source_port=$CHURN_PORT)" \
      "$(series_sum "$f" tcp_connections_closed_total flow_direction=incoming source_address=$IP_S source_port=$CHURN_PORT)" \
      "$(series_sum "$f" tcp_connection_failures_total destination_address=$IP_S destination_port=$CHURN_PORT)" \
      "$(series_sum "$f" flowtel_ebpf_dropped_total)"
  }

  for cfg in agent floor; do
    wait_quiet
    start_tracer "$cfg"
    pid=$(tracer_pid "$cfg")
    sleep 1
    a0=$(nst "$NS_C" TcpActiveOpens)
    f0=$(nst "$NS_C" TcpAttemptFails)
    p0=$(nst "$NS_S" TcpPassiveOpens)
    s0=$(prog_stats "$TRACER_IDS")
    c0=$(cpu_ticks "$pid")
    start_sampler "$pid" "$WORK/rss"
    fp0=$(foreign_progs)
    proc_snapshot >"$WORK/ps0"
    t0=$(now)
    ip netns exec "$NS_C" "$CHURN_BIN" client "$IP_S" "$CHURN_PORT" "$CHURN_RATE" "$CHURN_SECONDS" >"$WORK/churn-client.out" 2>>"$OUTDIR/churn-client.log" ||
      die "churn client failed: see $OUTDIR/churn-client.log"
    t1=$(now)
    c1=$(cpu_ticks "$pid")
    stop_sampler
    proc_snapshot >"$WORK/ps1"
    fp1=$(foreign_progs)
    fcpu=$(foreign_cpu "$WORK/ps0" "$WORK/ps1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    fprogs=$((fp0 > fp1 ? fp0 : fp1))
    a1=$(nst "$NS_C" TcpActiveOpens)
    f1=$(nst "$NS_C" TcpAttemptFails)
    p1=$(nst "$NS_S" TcpPassiveOpens)
    client=$(tail -1 "$WORK/churn-client.out")
    cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz / (t1 - t0) * 100}')
    rss=$(max_of "$WORK/rss")
    agent="null"
    waited=0
    if [[ $cfg == agent ]]; then
      # A final collection: wait until the agent's counts hold still over two
      # scrapes (at least 3 collection intervals after the last connection).
      prev="" stable=0
      sleep 3
      waited=3
      for ((i = 0; i < 30 && stable < 2; i++)); do
        scrape >"$WORK/metrics"
        cur=$(agent_counts "$WORK/metrics")
        if [[ $cur == "$prev" ]]; then stable=$((stable + 1)); else stable=0; fi
        prev=$cur
        sleep 1
        waited=$((waited + 1))
      done
      cp "$WORK/metrics" "$OUTDIR/churn-metrics.txt"
      read -r oo co oi ci fl dr <<<"$cur"
      agent=$(jq -cn --argjson oo "$oo" --argjson co "$co" --argjson oi "$oi" --argjson ci "$ci" --argjson fl "$fl" --argjson dr "$dr" \
        '{opened_out: $oo, closed_out: $co, opened_in: $oi, closed_in: $ci, failures: $fl, dropped: $dr}')
    else
      sleep 1
    fi
    s1=$(prog_stats "$TRACER_IDS")
    hwm=$(vm_kb "$pid" VmHWM)
    bpf=$(stats_delta "$s0" "$s1")
    stop_tracer "$cfg"
    floor="null"
    [[ $cfg == floor ]] && floor=$(tail -1 "$FLOOR_OUT")
    jq -cn --arg cfg "$cfg" --argjson client "$client" --argjson active "$((a1 - a0))" --argjson fails "$((f1 - f0))" \
      --argjson passive "$((p1 - p0))" --argjson agent "$agent" --argjson floor "$floor" --argjson cpu "$cpu" \
      --argjson rss "$rss" --argjson hwm "${hwm:-0}" --argjson bpf "$bpf" --argjson waited "$waited" \
      --argjson seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" --arg killed "$STOP_NOTE" \
      --argjson fcpu "$fcpu" --argjson fprogs "$fprogs" --arg quiet "$QUIET_NOTE" \
      '{section: "churn", config: $cfg, client: $client, nstat: {active_opens: $active, attempt_fails: $fails, passive_opens: $passive},
        agent: $agent, floor: $floor, cpu_pct: $cpu, rss_max_kb: $rss, hwm_kb: $hwm, bpf: $bpf, seconds: $seconds,
        final_wait_s: $waited, killed: ($killed != ""), foreign_cpu_pct: $fcpu, foreign_progs: $fprogs, quiet_timeout: ($quiet != "")}' >>"$RUNS"
    STOP_NOTE=""
    log "churn $cfg: client $client; nstat active opens $((a1 - a0)), passive opens $((p1 - p0))${agent:+; agent $agent}"
  done
fi

# ----------------------------------------------------------------- report ---
TABLE=$OUTDIR/table.md
node "$BENCH/render.mjs" "$RUNS" >"$TABLE"
cat "$TABLE"
if [[ $WRITE_DOCS == 1 ]]; then
  node "$BENCH/render.mjs" --insert "$DOC" "$TABLE"
  log "results written into $DOC (raw runs: $RUNS)"
fi
