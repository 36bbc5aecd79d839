#!/usr/bin/env bash
# Soak: the agent under steady TCP connection churn for a long time, with the
# server port rotating through a pool, sampling its RSS, heap, series count and
# counters over time. The question: are memory and series count flat?
#
#   bash bench/reliability/soak.sh [MINUTES]        (root; default 60)
#
# Environment:
#   SOAK_RATE=200         connections per second
#   SOAK_PORTS=16         server ports in the pool (one churn server each)
#   SOAK_ROUND_SECONDS=5  seconds of churn on one port before moving to the next
#   SOAK_SAMPLE_SECONDS=30
#   SOAK_DROP=""          an `aggregate` processor dropping these attributes
#                         (comma-separated), e.g. process.pid; "" : none
#   SOAK_DOCS=docs/reliability.md  the curve replaces the block between
#                         <!-- soak:begin[:SOAK_TAG] --> and <!-- soak:end[:SOAK_TAG] --> there ("" : don't)
#   SOAK_TAG=""           which block
#   SOAK_OTLP_DOWN=0      1: also an otlp exporter (export_interval 1s) to a port where
#                         nothing listens: its sending queue fills for the whole run
#   SOAK_MEMORY_LIMIT_MIB= a memory_limiter with this limit_mib first in the pipeline
#
#   SOAK_NET=0            runs side by side need different numbers (namespaces, subnet)
#
# Traffic stays between two network namespaces it creates (rlsoak0-c 10.75.0.1
# <-> rlsoak0-s 10.75.0.2 over a veth pair); the agent runs in the root
# namespace and sees them all. Ground truth: the churn client's own count of
# closed connections and the kernel's TcpActiveOpens (nstat) in rlsoak-c.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

MINUTES=${1:-60}
RATE=${SOAK_RATE:-200}
PORTS=${SOAK_PORTS:-16}
ROUND=${SOAK_ROUND_SECONDS:-5}
SAMPLE=${SOAK_SAMPLE_SECONDS:-30}
DOCS=${SOAK_DOCS-docs/reliability.md}
DROP=${SOAK_DROP:-}
OTLP_DOWN=${SOAK_OTLP_DOWN:-0}
MEMORY_LIMIT=${SOAK_MEMORY_LIMIT_MIB:-}
TAG=${SOAK_TAG:+:$SOAK_TAG}
BASE_PORT=${SOAK_BASE_PORT:-7100}
NET=${SOAK_NET:-0}
NS_C=rlsoak$NET-c
NS_S=rlsoak$NET-s
IP_C=10.75.$NET.1
IP_S=10.75.$NET.2

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (loads eBPF programs, creates network namespaces)"
for t in ip nstat curl node make gcc awk; do command -v "$t" >/dev/null || die "missing tool: $t"; done
[[ -f dist/src/cli/main.js ]] || die "build first: npm run build"
make -s -C bench/churn >/dev/null
CHURN=$REPO/bench/churn/.output/churn
for ns in "$NS_C" "$NS_S"; do ! ip netns list | grep -qw "^$ns" || die "network namespace $ns exists (a previous run?): ip netns del $ns"; done

WORK=$(mktemp -d /tmp/flowtel-soak.XXXXXX)
chmod 755 "$WORK"
AGENT_PID=""
CHURN_LOOP=""
SERVER_PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e # every step runs, whatever the one before did
  [[ -n $CHURN_LOOP ]] && kill "$CHURN_LOOP" 2>/dev/null
  [[ -n $AGENT_PID ]] && { kill -TERM "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null; }
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_C"
ip netns add "$NS_S"
ip link add "rlsoak${NET}c" netns "$NS_C" type veth peer name "rlsoak${NET}s" netns "$NS_S"
ip -n "$NS_C" addr add "$IP_C/24" dev "rlsoak${NET}c"
ip -n "$NS_S" addr add "$IP_S/24" dev "rlsoak${NET}s"
for ns in "$NS_C" "$NS_S"; do ip -n "$ns" link set lo up; done
ip -n "$NS_C" link set "rlsoak${NET}c" up
ip -n "$NS_S" link set "rlsoak${NET}s" up
ip netns exec "$NS_C" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"

for ((i = 0; i < PORTS; i++)); do
  ip netns exec "$NS_S" "$CHURN" server $((BASE_PORT + i)) >/dev/null 2>>"$WORK/servers.log" &
  SERVER_PIDS+=($!)
done

PROM_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# The agent sees the whole host: a filter on the soak's subnet (pushed into the
# kernel) keeps whatever else runs on the machine out of the numbers.
PROCESSORS="filter"
AGGREGATE=""
LIMITER=""
if [[ -n $MEMORY_LIMIT ]]; then
  PROCESSORS="memory_limiter, $PROCESSORS"
  LIMITER="memory_limiter: { limit_mib: $MEMORY_LIMIT }"
fi
if [[ -n $DROP ]]; then
  PROCESSORS="$PROCESSORS, aggregate"
  AGGREGATE="aggregate: { drop: [${DROP}] }"
fi
EXPORTERS="prometheus"
OTLP=""
if ((OTLP_DOWN)); then
  DEAD_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  EXPORTERS="prometheus, otlp"
  OTLP="otlp: { endpoint: \"http://127.0.0.1:$DEAD_PORT\", export_interval: 1s }"
fi
cat >"$WORK/config.yaml" <<EOF
receivers:
  ebpf_tcp: { collection_interval: 10s }
processors:
  filter: { include: { cidrs: ["10.75.$NET.0/24"] } }
  $AGGREGATE
  $LIMITER
exporters:
  prometheus: { endpoint: "127.0.0.1:$PROM_PORT" }
  $OTLP
service:
  telemetry: { logs: { level: warn } }
  pipelines:
    metrics: { receivers: [ebpf_tcp], processors: [$PROCESSORS], exporters: [$EXPORTERS] }
EOF
node dist/src/cli/main.js run --config "$WORK/config.yaml" >/dev/null 2>"$WORK/agent.log" &
AGENT_PID=$!
for ((i = 0; i < 100; i++)); do curl -sf "http://127.0.0.1:$PROM_PORT/metrics" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PROM_PORT/metrics" >/dev/null || die "the agent did not come up: $(cat "$WORK/agent.log")"
log "agent pid $AGENT_PID, $MINUTES min of churn at $RATE/s over $PORTS ports ($ROUND s per port), a sample every $SAMPLE s"

opens() { ip netns exec "$NS_C" nstat -asz TcpActiveOpens | awk '$1 == "TcpActiveOpens" {print $2}'; }
OPENS0=$(opens)

# The churn: one port after the other, ROUND seconds each, until the end.
END=$(($(date +%s) + MINUTES * 60))
(
  i=0
  while (($(date +%s) + ROUND <= END)); do
    ip netns exec "$NS_C" "$CHURN" client "$IP_S" $((BASE_PORT + i % PORTS)) "$RATE" "$ROUND" >>"$WORK/client.jsonl" 2>>"$WORK/client.log" || true
    i=$((i + 1))
  done
) &
CHURN_LOOP=$!

# The agent's count of closed connections from $IP_C: the sum of
# tcp_connections_closed_total over every series seen so far. A series stops
# being exported 5 minutes after its last change (a client pid that is gone),
# so the last value of each is kept in $WORK/closed.state; one that comes back
# starts from 0 again (a counter reset), and what it had before is carried.
closed_total() {
  awk -v ip="$IP_C" -v st="$WORK/closed.state" '
    BEGIN { while ((getline l < st) > 0) { split(l, a, "\t"); if (a[1] == "carried") carried = a[2]; else last[a[1]] = a[2] } }
    /^tcp_connections_closed_total[{]/ && index($0, "source_address=\"" ip "\"") {
      v = $NF; k = $0; sub(/ [^ ]*$/, "", k)
      if ((k in last) && v + 0 < last[k] + 0) carried += last[k]
      last[k] = v
    }
    END {
      s = carried; printf "" > st
      for (k in last) { s += last[k]; print k "\t" last[k] > st }
      print "carried\t" carried + 0 > st
      print s + 0
    }'
}

# sample: elapsed_s rss_mb heap_mb series tracked closed_agent closed_client ebpf_dropped
sample() {
  local t=$1 body rss heap series tracked closed dropped client
  body=$(curl -sf "http://127.0.0.1:$PROM_PORT/metrics") || { echo "$t - - - - - - - - -"; return; }
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$AGENT_PID/status")
  heap=$(awk '/^flowtel_process_heap_used[{ ]/ {printf "%.1f", $NF / 1048576}' <<<"$body")
  series=$(grep -v '^#' <<<"$body" | grep -v '^flowtel_' | grep -c .) || true
  tracked=$(awk '/^flowtel_tracked_connections[{ ]/ {s += $NF} END {print s + 0}' <<<"$body")
  closed=$(closed_total <<<"$body")
  dropped=$(awk '/^flowtel_ebpf_dropped_total[{ ]/ {s += $NF} END {print s + 0}' <<<"$body")
  client=$(awk -F'"closed":' 'NF > 1 {split($2, a, /[,}]/); s += a[1]} END {print s + 0}' "$WORK/client.jsonl" 2>/dev/null || echo 0)
  queue=$(awk '/^flowtel_exporter_queue_size[{].*exporter="otlp"/ {print $NF}' <<<"$body")
  qdropped=$(awk '/^flowtel_exporter_dropped_batches_total[{].*exporter="otlp"/ {print $NF}' <<<"$body")
  echo "$t $rss ${heap:--} $series $tracked $closed $client $dropped ${queue:--} ${qdropped:--}"
}

START=$(date +%s)
: >"$WORK/samples.txt"
while kill -0 "$CHURN_LOOP" 2>/dev/null; do
  sample $(($(date +%s) - START)) | tee -a "$WORK/samples.txt" >&2
  for ((s = 0; s < SAMPLE && $(date +%s) < END + 1; s++)); do sleep 1; kill -0 "$CHURN_LOOP" 2>/dev/null || break; done
done
wait "$CHURN_LOOP" || true
# Two collections after the last connection so every close is exported.
sleep 21
sample $(($(date +%s) - START)) | tee -a "$WORK/samples.txt" >&2
OPENS=$(($(opens) - OPENS0))
REASONS=$(curl -sf "http://127.0.0.1:$PROM_PORT/metrics" | awk '/^flowtel_ebpf_dropped_total[{]/ {match($0, /reason="[^"]*"/); r = substr($0, RSTART + 8, RLENGTH - 9); printf "%s%s %s", sep, r, $NF; sep = ", "}')
kill -0 "$AGENT_PID" 2>/dev/null || die "the agent died: $(tail -20 "$WORK/agent.log")"

read -r _ _ _ _ _ CLOSED_AGENT CLOSED_CLIENT DROPPED _ < <(tail -1 "$WORK/samples.txt")
FIRST_FULL=$(awk -v r="$ROUND" -v p="$PORTS" '$1 >= r * p {print; exit}' "$WORK/samples.txt")
LAST=$(tail -1 "$WORK/samples.txt")
ERRORS=$(grep -c '"level":50' "$WORK/agent.log" || true)

TABLE=$(
  echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), **$MINUTES min** at $RATE connections/s over $PORTS rotating server ports ($ROUND s each), kernel $(uname -r), $(nproc) CPUs."
  echo "Command: \`SOAK_RATE=$RATE SOAK_PORTS=$PORTS${DROP:+ SOAK_DROP=$DROP}${MEMORY_LIMIT:+ SOAK_MEMORY_LIMIT_MIB=$MEMORY_LIMIT}$( ((OTLP_DOWN)) && echo ' SOAK_OTLP_DOWN=1') bash bench/reliability/soak.sh $MINUTES\`"
  echo
  if ((OTLP_DOWN)); then
    echo "| elapsed | RSS (MB) | V8 heap (MB) | series | tracked connections | closed (agent) | closed (client) | ebpf dropped | otlp queue (batches) | otlp dropped |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk '{printf "| %dm%02ds | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1 / 60, $1 % 60, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$WORK/samples.txt"
  else
    echo "| elapsed | RSS (MB) | V8 heap (MB) | series | tracked connections | closed (agent) | closed (client) | ebpf dropped |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk '{printf "| %dm%02ds | %s | %s | %s | %s | %s | %s | %s |\n", $1 / 60, $1 % 60, $2, $3, $4, $5, $6, $7, $8}' "$WORK/samples.txt"
  fi
  echo
  echo "Kernel \`TcpActiveOpens\` in $NS_C: $OPENS; the churn client closed $CLOSED_CLIENT; the agent counted $CLOSED_AGENT closed (\`tcp_connections_closed_total\` from $IP_C); \`flowtel_ebpf_dropped_total\` $DROPPED${REASONS:+ ($REASONS)}; error lines in the agent log: $ERRORS."
  echo "After the first full rotation of ports: \`$FIRST_FULL\`; at the end: \`$LAST\` (elapsed s, RSS MB, heap MB, series, tracked, closed agent, closed client, ebpf dropped, otlp queue, otlp dropped)."
)
echo "$TABLE"
if [[ -n $DOCS ]]; then
  [[ -f $DOCS ]] || die "$DOCS not found"
  if grep -qF "<!-- soak:begin$TAG -->" "$DOCS"; then
    printf '%s\n' "$TABLE" >"$WORK/table.md"
    awk -v f="$WORK/table.md" -v b="<!-- soak:begin$TAG -->" -v e="<!-- soak:end$TAG -->" '$0 == b {print; while ((getline l < f) > 0) print l; skip = 1; next} $0 == e {skip = 0} !skip' "$DOCS" >"$WORK/docs.md"
    cp "$WORK/docs.md" "$DOCS"
    log "curve written into $DOCS"
  fi
fi
