# Helpers shared by the bench scripts (bench/lib.sh for the suites, and
# bench/suites/overhead.sh), with no side effect of their own: sourcing this
# file only defines functions. Some read globals of their caller: SUITE (log's
# prefix, optional), CLK_TCK (foreign_cpu), SAMPLER_PID (the samplers).

log() { printf '[bench %s%s] %s\n' "${SUITE:+$SUITE }" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
stop_pid() { # pid [seconds]: SIGTERM, wait, then SIGKILL. Prints "kill" if it took SIGKILL.
  local pid=$1 limit=${2:-15} i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo kill
  fi
  wait "$pid" 2>/dev/null || true
}
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
start_sampler() { # pid file: VmRSS (kB) every 0.5 s while the process lives
  local pid=$1 file=$2
  (while kill -0 "$pid" 2>/dev/null; do vm_kb "$pid" VmRSS; sleep 0.5; done) >"$file" 2>/dev/null &
  SAMPLER_PID=$!
}
stop_sampler() {
  [[ -n $SAMPLER_PID ]] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  SAMPLER_PID=""
}
max_of() { sort -n "$1" 2>/dev/null | tail -1 | grep . || echo 0; }
proc_snapshot() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print substr($0, 1, index($0, " ") - 1), f[2], f[12] + f[13] }'
}
foreign_cpu() { # before after seconds
  awk -v me=$$ -v secs="$3" -v hz="$CLK_TCK" '
    FNR == NR { t0[$1] = $3; next }
    { pp[$1] = $2; t1[$1] = $3 }
    END {
      for (p in t1) {
        if (p == 2 || pp[p] == 2) continue
        q = p; ours = 0
        for (n = 0; n < 64 && q != "" && q != 0; n++) { if (q == me) { ours = 1; break } q = pp[q] }
        if (ours) continue
        d = t1[p] - ((p in t0) ? t0[p] : 0)
        if (d > 0) s += d
      }
      printf "%.1f", s / hz / secs * 100
    }' "$1" "$2"
}
prog_stats() { # ids-json -> {name: {ns, cnt, misses}}
  bpftool prog show --json | jq -c --argjson ids "$1" \
    'map(select(.id as $i | $ids | index($i))) | map({key: .name, value: {ns: (.run_time_ns // 0), cnt: (.run_cnt // 0), misses: (.recursion_misses // 0)}}) | from_entries'
}
stats_delta() { # before after -> per-name delta
  jq -cn --argjson a "$1" --argjson b "$2" \
    '$b | with_entries(.value = {ns: (.value.ns - ($a[.key].ns // 0)), cnt: (.value.cnt - ($a[.key].cnt // 0)), misses: (.value.misses - ($a[.key].misses // 0))})'
}
flowtel_like_progs() {
  bpftool prog show --json | jq '[.[] | select(.name | IN("handle_set_state", "udp_egress", "udp_ingress", "floor_set_state"))] | length'
}
wait_for_line() { # file pattern seconds pid
  local file=$1 pat=$2 limit=$3 pid=$4 i
  for ((i = 0; i < limit * 10; i++)); do
    grep -q -- "$pat" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
