#!/usr/bin/env bash
# Builds the flowtel image with deploy/docker/Dockerfile and runs it as
# deploy/docker-compose/docker-compose.yaml does (docker-compose itself: the
# same capabilities, not privileged, host network and PID namespaces, the
# same mounts), on a machine WITHOUT access to a container registry: only
# Debian's mirror (debootstrap, apt) and the npm registry.
#
#   sudo bash deploy/docker/smoke-test.sh           # as root; idempotent
#
# Needs Debian's docker.io, podman, debootstrap, docker-compose, bpftool, jq
# and curl (bash deploy/install.sh --test-tools installs
# them) and a BTF kernel. Results and timings: docs/deploy.md, "The image and
# the compose stack, proven".
#
# Two engines, both from Debian 12:
#  - Docker (docker.io 20.10) BUILDS the image: BuildKit, the Dockerfile's own
#    .dockerignore, a layer cache. A daemon this script starts itself runs
#    with no NAT and no default bridge (--iptables=false --ip-forward=false
#    --ip-masq=false --bridge=none): host-network containers need none of
#    that, and Docker's iptables rules and ip_forward would change this
#    machine's network for everything else running on it.
#  - Podman 4.3 RUNS the agent, through its Docker-compatible API, driven by
#    docker-compose: Docker 20.10 refuses the compose file's cap_add
#    ("invalid CapAdd: unknown capability: CAP_BPF"; CAP_BPF and CAP_PERFMON
#    are accepted from Docker Engine 23 on), Podman grants them.
#
# Steps (each prints "ok - ..." or the script stops with "FAILED - ..."):
#  1. The Docker daemon (the running one, or one started here) and a Podman
#     API service on a socket of its own.
#  2. A local base image, cached: `debootstrap --variant=minbase bookworm`
#     from the Debian mirror this machine's apt uses, plus THIS MACHINE'S
#     Node 20 (node, npm, corepack and the headers, copied from the host's
#     installation into /usr/local, where Docker Hub's node images have them:
#     Debian 12's own nodejs is Node 18). Only for this local base: the
#     Dockerfile's defaults stay node:20-bookworm / node:20-bookworm-slim.
#     The base also gets the host's apt sources and Valid-Until setting and
#     the CA bundle the host's Node trusts (a TLS-inspecting proxy in front
#     of the npm registry needs it in the build too). Rebuilt only when one
#     of those changes.
#  3. The real image, with the real Dockerfile (multi-stage: clang, llvm,
#     libbpf-dev, bpftool, make, g++ in the build stage compile bpf/ and
#     native/ and tsc the TypeScript; a runtime stage with
#     libbpf1/libelf1/zlib1g), both stages FROM the local base
#     (--build-arg BUILD_IMAGE / RUNTIME_IMAGE); copied to Podman.
#  4. `docker-compose up flowtel` with the compose file and one override: the
#     config file mounted at /etc/flowtel/config.yaml serves the flows on a
#     Prometheus endpoint (the compose config sends them to the Collector,
#     whose image is not in Debian). Checked: the container's settings as the
#     engine applied them, the agent's effective capabilities, its eBPF
#     programs (bpftool prog show, held by the container's process), and
#     exactly the TCP connections made between two network namespaces this
#     script creates: tcp_connections_opened_total / _closed_total and the
#     bytes of both ends on the agent's Prometheus endpoint.
#  5. `docker stop` (SIGTERM): exit code 0, "flowtel stopped" last, none of
#     its BPF programs left loaded, none named like flowtel's held by nobody.
#  6. The compose stack as far as Debian has the images: flowtel with its
#     real config (deploy/config/flowtel-otlp.yaml) and Prometheus (a local
#     image of Debian's prometheus package standing in for prom/prometheus,
#     on the compose network, run by Docker) scraping the agent through
#     host.docker.internal:9465 as deploy/docker-compose/prometheus.yml says.
#     Not started (no image in Debian): the Collector, Loki, Tempo, Grafana.
#
# Environment:
#   FLOWTEL_SMOKE_NETNS         prefix of the two test namespaces (default: imgsmoke)
#   FLOWTEL_SMOKE_SUBNET        they get 10.201.<N>.1 and .2 (default: 92); the compose
#                               network of a Docker daemon started here 10.201.<N>.128/28
#   FLOWTEL_SMOKE_CONNECTIONS   TCP connections to make (default: 25)
#   FLOWTEL_SMOKE_KEEP=1        leave the daemons and the containers running
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

DOCKER="$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker)"  # Debian's client: BuildKit built in
NS="${FLOWTEL_SMOKE_NETNS:-imgsmoke}"
SUBNET="${FLOWTEL_SMOKE_SUBNET:-92}"
CONNECTIONS="${FLOWTEL_SMOKE_CONNECTIONS:-25}"
KEEP="${FLOWTEL_SMOKE_KEEP:-0}"
IMAGE=flowtel:0.1.0                       # the tag compose and the manifests use
PROM_IMAGE=flowtel-local/prometheus:debian
PROJECT=flowtelsmoke                      # compose project name
COMPOSE_FILE=deploy/docker-compose/docker-compose.yaml
STATE=/var/cache/flowtel-smoke            # daemon logs and sockets, the build log
DOCKER_SOCK=/var/run/docker.sock
PODMAN_SOCK="$STATE/podman.sock"
WORK="$(mktemp -d /tmp/flowtel-smoke.XXXXXX)"
chmod 755 "$WORK"
CLIENT_NS="${NS}-c" SERVER_NS="${NS}-s"
CLIENT_IP="10.201.${SUBNET}.1" SERVER_IP="10.201.${SUBNET}.2"
COMPOSE_NET="10.201.${SUBNET}.128/28" HOST_GATEWAY="10.201.${SUBNET}.129"
export DOCKER_BUILDKIT=1

T0=$SECONDS
log() { printf '[%4ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
ok() { log "ok - $*"; }
fail() { log "FAILED - $*"; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 not found: run bash deploy/install.sh --test-tools"; }

[[ $(id -u) -eq 0 ]] || fail "run as root (BPF, network namespaces, the container engines)"
for c in dockerd podman debootstrap docker-compose bpftool jq curl ip node npm; do need "$c"; done
[[ -x "$DOCKER" ]] || fail "no docker client"
[[ -r /sys/kernel/btf/vmlinux ]] || fail "this kernel has no BTF (/sys/kernel/btf/vmlinux)"
mkdir -p "$STATE"

dk() { DOCKER_HOST="unix://$DOCKER_SOCK" "$DOCKER" "$@"; }            # Docker: builds, Prometheus
pdk() { DOCKER_HOST="unix://$PODMAN_SOCK" "$DOCKER" "$@"; }           # the docker CLI on Podman's API
# docker-compose on Podman (the agent) and on Docker (the rest of the stack).
compose_agent() { DOCKER_HOST="unix://$PODMAN_SOCK" docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" -f "$WORK/override-agent.yaml" "$@"; }
compose_stack() { DOCKER_HOST="unix://$DOCKER_SOCK" docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" -f "$WORK/override-stack.yaml" "$@"; }

STARTED_DOCKERD=0 PODMAN_SERVICE_PID=""
stop_pid() { kill "$1" 2>/dev/null; for _ in $(seq 1 100); do [[ -e "/proc/$1" ]] || return 0; sleep 0.1; done; }
cleanup() {
  local rc=$?
  set +e
  [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null
  ip netns del "$CLIENT_NS" 2>/dev/null
  ip netns del "$SERVER_NS" 2>/dev/null
  if [[ "$KEEP" != 1 ]]; then
    [[ -f "$WORK/override-stack.yaml" ]] && compose_stack down --volumes --remove-orphans >/dev/null 2>&1
    [[ -f "$WORK/override-agent.yaml" && -n "$PODMAN_SERVICE_PID" ]] && compose_agent down --volumes --remove-orphans >/dev/null 2>&1
    [[ -n "$PODMAN_SERVICE_PID" ]] && stop_pid "$PODMAN_SERVICE_PID"
    ((STARTED_DOCKERD)) && stop_pid "$(cat "$STATE/dockerd.pid" 2>/dev/null)"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# --- 1. The engines ----------------------------------------------------------
if dk info >/dev/null 2>&1; then
  OWN_DOCKERD=0
  ok "a Docker daemon is running ($(dk version -f '{{.Server.Version}}')): using it"
else
  OWN_DOCKERD=1
  log "starting dockerd: no iptables rules, no ip_forward, no default bridge; compose networks from $COMPOSE_NET (log: $STATE/dockerd.log)"
  # --host-gateway-ip: host.docker.internal (compose extra_hosts: host-gateway)
  # is the compose network's gateway, as it is docker0's address by default.
  dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    --default-address-pool "base=${COMPOSE_NET},size=28" --host-gateway-ip "$HOST_GATEWAY" \
    --host "unix://$DOCKER_SOCK" --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
  STARTED_DOCKERD=1
  for _ in $(seq 1 300); do dk info >/dev/null 2>&1 && break; sleep 0.1; done
  dk info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2; fail "dockerd did not start"; }
  ok "dockerd $(dk version -f '{{.Server.Version}}') started"
fi
# Podman's API service. Where root lacks CAP_SYS_RESOURCE (some sandboxes),
# runc cannot raise a container's RLIMIT_NOFILE/NPROC to Podman's defaults:
# the containers get the limits this shell has instead (Podman lowers its own
# RLIMIT_NPROC to 32768 there).
podman_env=()
if ! (( (0x$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24) & 1 )); then
  nproc="$(ulimit -Hu)"; [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$(ulimit -Hn)" "$(ulimit -Hn)" "$nproc" "$nproc" >"$STATE/containers.conf"
  podman_env=(env "CONTAINERS_CONF=$STATE/containers.conf")
  log "root has no CAP_SYS_RESOURCE here: container rlimits nofile=$(ulimit -Hn) nproc=$nproc"
fi
# A service left by an interrupted run (FLOWTEL_SMOKE_KEEP=1, a kill): replaced.
old_pid="$(cat "$STATE/podman.pid" 2>/dev/null || true)"
if [[ -n "$old_pid" && "$(cat "/proc/$old_pid/cmdline" 2>/dev/null | tr '\0' ' ')" == *"system service"*"$PODMAN_SOCK"* ]]; then stop_pid "$old_pid"; fi
rm -f "$PODMAN_SOCK"
"${podman_env[@]}" podman system service --time=0 "unix://$PODMAN_SOCK" >"$STATE/podman.log" 2>&1 &
PODMAN_SERVICE_PID=$!
echo "$PODMAN_SERVICE_PID" >"$STATE/podman.pid"
for _ in $(seq 1 100); do pdk version >/dev/null 2>&1 && break; sleep 0.1; done
pdk version >/dev/null 2>&1 || { tail -20 "$STATE/podman.log" >&2; fail "podman system service did not start"; }
ok "Podman $(podman version -f '{{.Server.Version}}' 2>/dev/null || podman --version) API service on $PODMAN_SOCK"

# --- 2. The local base image -------------------------------------------------
NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_VERSION="$("$NODE_BIN" --version)"
[[ "$NODE_VERSION" == v20.* ]] || fail "the host's Node is $NODE_VERSION; the image is built on Node 20"
NODE_PREFIX="$(cd "$(dirname "$NODE_BIN")/.." && pwd)"        # /usr (Debian/NodeSource) or /usr/local
[[ -d "$NODE_PREFIX/lib/node_modules/npm" && -d "$NODE_PREFIX/include/node" ]] \
  || fail "npm or the Node headers are not under $NODE_PREFIX"
# The Debian mirror and apt settings this machine uses.
MIRROR="$(sed -n 's/^URIs: *\(\S*debian\/\?\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
[[ -n "$MIRROR" ]] || MIRROR="$(sed -n 's/^deb \(\[[^]]*\] \)\?\(\S*\) bookworm main.*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
APT_NO_VALID_UNTIL="$(apt-config dump | grep -c '^Acquire::Check-Valid-Until "false"' || true)"
# The CA bundle this machine's Node trusts (NODE_EXTRA_CA_CERTS or npm's
# cafile): where registry traffic goes through a TLS-inspecting proxy, npm ci
# in the build stage needs it as much as the host's npm does.
HOST_CA="${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}"
[[ -n "$HOST_CA" && "$HOST_CA" != null && -r "$HOST_CA" ]] || HOST_CA=""
HOST_CA_SUM="$([[ -n "$HOST_CA" ]] && sha256sum <"$HOST_CA" | cut -c1-16 || echo none)"
RECIPE="debootstrap-minbase-bookworm ${MIRROR} node-${NODE_VERSION} valid-until-${APT_NO_VALID_UNTIL} ca-${HOST_CA_SUM} v1"
BASE_IMAGE="flowtel-local/node:${NODE_VERSION#v}-bookworm"

if [[ "$(dk image inspect -f '{{index .Config.Labels "org.flowtel.base-recipe"}}' "$BASE_IMAGE" 2>/dev/null)" == "$RECIPE" ]]; then
  ok "base image $BASE_IMAGE cached ($RECIPE)"
else
  log "making the base image $BASE_IMAGE: debootstrap bookworm from $MIRROR + the host's Node $NODE_VERSION"
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; fail debootstrap; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # apt inside: the host's Debian sources (not other vendors'), and its
  # Valid-Until setting (a dated snapshot mirror has expired Release files).
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  if ((APT_NO_VALID_UNTIL)); then
    echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99flowtel-local-mirror"
  fi
  # Node 20 where Docker Hub's node images have it.
  install -m 755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include"
  cp -a "$NODE_PREFIX/lib/node_modules/npm" "$rootfs/usr/local/lib/node_modules/"
  [[ -d "$NODE_PREFIX/lib/node_modules/corepack" ]] && cp -a "$NODE_PREFIX/lib/node_modules/corepack" "$rootfs/usr/local/lib/node_modules/"
  cp -a "$NODE_PREFIX/include/node" "$rootfs/usr/local/include/"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" /usr/local/bin/node --version >/dev/null || fail "node does not run in the base"
  ca_env=()
  if [[ -n "$HOST_CA" ]]; then
    install -D -m 644 "$HOST_CA" "$rootfs/usr/local/share/flowtel-local/host-ca.crt"
    ca_env=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/flowtel-local/host-ca.crt')
  fi
  tar -C "$rootfs" -c . | dk import "${ca_env[@]}" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
    --change "LABEL org.flowtel.base-recipe=\"$RECIPE\"" \
    --change 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  ok "base image $BASE_IMAGE: Debian $(dk run --rm --network none "$BASE_IMAGE" cat /etc/debian_version), node $(dk run --rm --network none "$BASE_IMAGE" node --version), npm $(dk run --rm --network none "$BASE_IMAGE" npm --version 2>/dev/null)"
fi

# --- 3. The image ------------------------------------------------------------
log "docker build -f deploy/docker/Dockerfile -t $IMAGE (BUILD_IMAGE=RUNTIME_IMAGE=$BASE_IMAGE)"
dk build --network host --progress plain -f deploy/docker/Dockerfile \
  --build-arg "BUILD_IMAGE=$BASE_IMAGE" --build-arg "RUNTIME_IMAGE=$BASE_IMAGE" \
  -t "$IMAGE" . >"$STATE/build.log" 2>&1 || { tail -40 "$STATE/build.log" >&2; fail "docker build (log: $STATE/build.log)"; }
ok "image $IMAGE built ($(($(dk image inspect -f '{{.Size}}' "$IMAGE") / 1000000)) MB)"
# The same image in Podman's store (the image id is the config's digest in both).
copy_to_podman() {
  local id; id="$(dk image inspect -f '{{.Id}}' "$1")"
  if [[ "$(podman image inspect -f '{{.Id}}' "$1" 2>/dev/null)" != "${id#sha256:}" ]]; then
    dk save "$1" | podman load -q >/dev/null || fail "podman load $1"
  fi
  [[ "$(podman image inspect -f '{{.Id}}' "$1")" == "${id#sha256:}" ]] || fail "$1 differs in Podman"
}
copy_to_podman "$IMAGE"
ok "$IMAGE in Podman's store, same image id"

# --- helpers for the running agent ------------------------------------------
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# The sum of the samples of metric $1 in the Prometheus text at $2 whose labels include every k=v of $3...
prom_sum() {
  local name="$1" file="$2"; shift 2
  awk -v name="$name" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    /^#/ { next }
    {
      value = $NF; head = substr($0, 1, length($0) - length(value) - 1)
      brace = index(head, "{")
      metric = brace ? substr(head, 1, brace - 1) : head
      if (metric != name) next
      for (i = 1; i <= n; i++) { split(w[i], kv, "="); if (index(head, kv[1] "=\"" kv[2] "\"") == 0) next }
      total += value
    }
    END { printf "%d\n", total }' "$file"
}
# BPF program ids a process holds (program and link fds), from /proc/PID/fdinfo.
held_prog_ids() { grep -hs '^prog_id:' /proc/"$1"/fdinfo/* | awk '{print $2}' | sort -un; }
prog_name() { bpftool -j prog show id "$1" 2>/dev/null | jq -r '.name // empty'; }
# Names of the programs in a bpf/*.bpf.c source (the function after each SEC()).
source_programs() { awk '/^SEC\(/ { getline; if (match($0, /BPF_PROG\([a-z0-9_]+/)) print substr($0, RSTART + 9, RLENGTH - 9); else if (match($0, /^int [a-z0-9_]+\(/)) print substr($0, RSTART + 4, RLENGTH - 5) }' "$1" | sort -u; }

wait_log() { # container, message, seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    pdk logs "$1" 2>&1 | grep -q "\"msg\":\"$2\"" && return 0
    [[ "$(pdk inspect -f '{{.State.Running}}' "$1")" == true ]] || { pdk logs "$1" 2>&1 | tail -20 >&2; fail "the container exited before \"$2\""; }
    sleep 0.1
  done
  pdk logs "$1" 2>&1 | tail -20 >&2
  fail "no \"$2\" in the container's log after $3 s"
}

# --- 4. The agent in its container, as compose runs it ----------------------
PROM_PORT="$(free_port)" HEALTH_PORT="$(free_port)" TELEMETRY_PORT="$(free_port)"
cat >"$WORK/smoke-config.yaml" <<YAML
# deploy/config/flowtel-otlp.yaml's receivers, with the flows served on a
# Prometheus endpoint instead of sent to a Collector.
receivers:
  ebpf_tcp:
    collection_interval: 1s
    connection_events:
      failures: true
  ebpf_dns: {}
processors:
  # Only this script's hosts (other work on the machine may open thousands of
  # connections a second), one series per process name as deploy/config does.
  filter:
    include:
      cidrs: [10.201.${SUBNET}.0/24]
  aggregate:
    drop: [process.pid]
exporters:
  prometheus:
    endpoint: 127.0.0.1:${PROM_PORT}
extensions:
  health_check:
    endpoint: 127.0.0.1:${HEALTH_PORT}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      address: 127.0.0.1:${TELEMETRY_PORT}
  pipelines:
    metrics:
      receivers: [ebpf_tcp, ebpf_dns]
      processors: [filter, aggregate]
      exporters: [prometheus]
YAML
chmod 644 "$WORK/smoke-config.yaml"
cat >"$WORK/override-agent.yaml" <<YAML
services:
  flowtel:
    volumes:
      - ${WORK}/smoke-config.yaml:/etc/flowtel/config.yaml:ro
YAML
log "docker-compose up flowtel, on Podman (the compose file; only the config file replaced)"
compose_agent up -d --no-deps --no-build flowtel >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "docker-compose up flowtel"; }
CID="$(compose_agent ps -q flowtel)"
[[ -n "$CID" ]] || fail "no flowtel container"
# What the engine applied, and the capabilities the agent holds: exactly the
# compose file's cap_add (those this machine's root has at all), nothing else.
read -r privileged netmode pidmode readonly secopt < <(pdk inspect -f '{{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}} {{.HostConfig.PidMode}} {{.HostConfig.ReadonlyRootfs}} {{join .HostConfig.SecurityOpt ","}}' "$CID")
[[ "$privileged" == false && "$netmode" == host && "$pidmode" == host && "$readonly" == true ]] \
  || fail "container settings: privileged=$privileged network=$netmode pid=$pidmode read_only=$readonly"
ok "container $(echo "$CID" | cut -c1-12): not privileged, network host, pid host, read-only root, security_opt $secopt"
wait_log "$CID" "flowtel running" 60
PID="$(pdk inspect -f '{{.State.Pid}}' "$CID")"
CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE
  NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN
  SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE
  MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
decode_caps() { local m=$((16#$1)) i; for i in "${!CAPS[@]}"; do if (((m >> i) & 1)); then echo "${CAPS[$i]}"; fi; done | sort; }
host_caps="$(decode_caps "$(awk '/^CapBnd/ {print $2}' /proc/self/status)")"
compose_caps="$(compose_agent config | node -e '
  const y = require(process.argv[1]); let t = ""; process.stdin.on("data", (d) => (t += d));
  process.stdin.on("end", () => console.log(y.parse(t).services.flowtel.cap_add.map((c) => c.replace(/^CAP_/, "")).sort().join("\n")));' "$ROOT/node_modules/yaml")"
expected="$(comm -12 <(echo "$compose_caps") <(echo "$host_caps"))"
agent_caps="$(decode_caps "$(awk '/^CapEff/ {print $2}' /proc/"$PID"/status)")"
[[ "$agent_caps" == "$expected" ]] || fail "the agent's effective capabilities: $(echo $agent_caps), expected $(echo $expected)"
missing="$(comm -23 <(echo "$compose_caps") <(echo "$host_caps") | tr '\n' ' ')"
ok "the agent (host pid $PID) holds exactly: $(echo $agent_caps)${missing:+ (compose also adds ${missing}which root does not have on this machine)}"

# Its programs, as bpftool shows them, held by the container's process.
mapfile -t HELD < <(held_prog_ids "$PID")
declare -A HELD_NAMES=()
for id in "${HELD[@]}"; do n="$(prog_name "$id")"; [[ -n "$n" ]] && HELD_NAMES["$n"]=$id; done
for p in $(source_programs bpf/flowtel_tcp.bpf.c) dns_filter; do
  # dump_tracked_compat is dump_tracked for kernels before 6.2: one of the two is loaded.
  [[ $p == dump_tracked_compat ]] && continue
  [[ $p == dump_tracked && -n "${HELD_NAMES[dump_tracked_co]:-}${HELD_NAMES[dump_tracked_compat]:-}" ]] && continue
  [[ -n "${HELD_NAMES[$p]:-}${HELD_NAMES[${p:0:15}]:-}" ]] || fail "program $p is not held by the agent (held: ${!HELD_NAMES[*]})"
done
ok "eBPF programs loaded by the agent in the container (bpftool prog show): $(printf '%s\n' "${!HELD_NAMES[@]}" | sort | tr '\n' ' ')"

# Known traffic between two network namespaces of our own.
ip netns del "$CLIENT_NS" 2>/dev/null || true
ip netns del "$SERVER_NS" 2>/dev/null || true
ip netns add "$CLIENT_NS"
ip netns add "$SERVER_NS"
ip link add "${NS:0:12}c" netns "$CLIENT_NS" type veth peer name "${NS:0:12}s" netns "$SERVER_NS"
for pair in "$CLIENT_NS:${NS:0:12}c:$CLIENT_IP" "$SERVER_NS:${NS:0:12}s:$SERVER_IP"; do
  IFS=: read -r ns dev ip4 <<<"$pair"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip4/24" dev "$dev"
  ip -n "$ns" link set "$dev" up
done
PORT=7392 BYTES=1000
ip netns exec "$SERVER_NS" node -e '
  const [host, port, reply] = process.argv.slice(1);
  require("net").createServer((s) => { s.on("data", () => undefined); s.on("end", () => s.end(Buffer.alloc(Number(reply), 1))); })
    .listen(Number(port), host, () => console.log("ready"));' "$SERVER_IP" "$PORT" 10 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/server.log" && break; sleep 0.1; done
grep -q ready "$WORK/server.log" || fail "the test server did not start: $(cat "$WORK/server.log")"
ip netns exec "$CLIENT_NS" node -e '
  const [host, port, count, bytes] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
  const one = () => new Promise((resolve, reject) => {
    const s = require("net").connect({ host, port }, () => s.end(Buffer.alloc(bytes, 7)));
    s.on("data", () => undefined); s.once("error", reject); s.once("close", (e) => (e ? reject(new Error("failed")) : resolve()));
  });
  (async () => { for (let i = 0; i < count; i++) await one(); console.log(count); })().catch((e) => { console.error(e); process.exit(1); });' \
  "$SERVER_IP" "$PORT" "$CONNECTIONS" "$BYTES" >"$WORK/client.log" 2>&1 || fail "the test client failed: $(cat "$WORK/client.log")"
log "made $CONNECTIONS TCP connections $CLIENT_IP → $SERVER_IP:$PORT ($BYTES bytes each way up, 10 down) in namespaces $CLIENT_NS/$SERVER_NS"

CLIENT_LABELS="source_address=$CLIENT_IP destination_address=$SERVER_IP destination_port=$PORT flow_direction=outgoing"
SERVER_LABELS="source_address=$SERVER_IP destination_address=$CLIENT_IP source_port=$PORT flow_direction=incoming"
METRICS="$WORK/metrics.txt"
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$PROM_PORT/metrics" >"$METRICS" || true
  [[ "$(prom_sum tcp_connections_closed_total "$METRICS" $CLIENT_LABELS)" == "$CONNECTIONS" && \
     "$(prom_sum tcp_connections_closed_total "$METRICS" $SERVER_LABELS)" == "$CONNECTIONS" ]] && break
  sleep 0.2
done
check() { # metric, labels, expected
  local got; got="$(prom_sum "$1" "$METRICS" $2)"
  [[ "$got" == "$3" ]] || { grep -E "$SERVER_IP|$CLIENT_IP" "$METRICS" >&2 || true; fail "$1{${2// /,}} = $got, expected $3"; }
  log "   $1{${2// /,}} = $got"
}
log "the agent's Prometheus endpoint (127.0.0.1:$PROM_PORT, from the container in the host network):"
check tcp_connections_opened_total "$CLIENT_LABELS" "$CONNECTIONS"
check tcp_connections_closed_total "$CLIENT_LABELS" "$CONNECTIONS"
check tcp_connections_opened_total "$SERVER_LABELS" "$CONNECTIONS"
check tcp_connections_closed_total "$SERVER_LABELS" "$CONNECTIONS"
check tcp_bytes_sent_total "$CLIENT_LABELS" "$((CONNECTIONS * BYTES))"
check tcp_bytes_received_total "$CLIENT_LABELS" "$((CONNECTIONS * 10))"
check tcp_bytes_sent_total "$SERVER_LABELS" "$((CONNECTIONS * 10))"
check tcp_connection_failures_total "$CLIENT_LABELS" 0
ok "exactly the $CONNECTIONS connections made, both ends, with their bytes"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEALTH_PORT/")"
[[ "$code" == 200 ]] || fail "health_check answered $code"
ok "health_check extension: 200"

# --- 5. docker stop: SIGTERM, clean exit, nothing left attached --------------
stop_started=$SECONDS
pdk stop -t 30 "$CID" >/dev/null
stop_seconds=$((SECONDS - stop_started))
exit_code="$(pdk inspect -f '{{.State.ExitCode}}' "$CID")"
# A container that ignored SIGTERM would be killed after 30 s (exit code 137).
[[ "$exit_code" == 0 ]] || { pdk logs "$CID" 2>&1 | tail -20 >&2; fail "the agent exited $exit_code on docker stop"; }
pdk logs "$CID" 2>&1 | tail -1 | grep -q '"msg":"flowtel stopped"' || fail "the last log line is not \"flowtel stopped\": $(pdk logs "$CID" 2>&1 | tail -1)"
left=""
for _ in $(seq 1 30); do
  left=""
  for id in "${HELD[@]}"; do bpftool prog show id "$id" >/dev/null 2>&1 && left+="$id "; done
  [[ -z "$left" ]] && break
  sleep 0.1
done
[[ -z "$left" ]] || fail "programs still loaded after docker stop: $left"
# No program named like flowtel's that no process holds (what a careless
# agent leaves attached); other agents running on this machine hold theirs.
names_json="$(for p in $(source_programs bpf/flowtel_tcp.bpf.c) $(source_programs bpf/flowtel_dns.bpf.c); do echo "$p"; echo "${p:0:15}"; done | jq -R . | jq -sc .)"
orphans="x"
for _ in 1 2 3; do
  orphans=""
  held_by_any=" $( (grep -rhs '^prog_id:' /proc/[0-9]*/fdinfo || true) | awk '{print $2}' | sort -u | tr '\n' ' ') "
  for id in $(bpftool -j prog show | jq -r --argjson names "$names_json" '.[] | select(.name as $n | $names | index($n)) | .id'); do
    [[ "$held_by_any" == *" $id "* ]] || orphans+="$id "
  done
  [[ -z "$orphans" ]] && break
  sleep 0.3
done
[[ -z "$orphans" ]] || fail "BPF programs named like flowtel's that no process holds: $orphans"
ok "docker stop (SIGTERM): exit code 0 after ${stop_seconds} s, \"flowtel stopped\", none of its ${#HELD[@]} BPF programs left loaded, none named like flowtel's held by nobody (bpftool prog show)"
kill "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
ip netns del "$CLIENT_NS"
ip netns del "$SERVER_NS"
compose_agent rm -f -s flowtel >/dev/null 2>&1

# --- 6. The compose stack, as far as Debian has the images --------------------
port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
for p in 9465 13133 9090; do port_free "$p" || fail "port $p is in use on this host: the compose stack needs it (flowtel :9465 :13133 on the host network, Prometheus 127.0.0.1:9090)"; done
mkdir -p "$WORK/prometheus-image"
cat >"$WORK/prometheus-image/Dockerfile" <<DOCKERFILE
# Debian's prometheus package, standing in for prom/prometheus: the same
# entrypoint, working directory and user as that image, and the data in
# /prometheus (Debian's default path, /var/lib/prometheus/metrics2, points
# there) for the compose file's volume.
FROM $BASE_IMAGE
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown nobody:nogroup /prometheus \
 && rm -rf /var/lib/prometheus/metrics2 && ln -s /prometheus /var/lib/prometheus/metrics2
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
dk build --network host -q -t "$PROM_IMAGE" "$WORK/prometheus-image" >"$STATE/prometheus-build.log" 2>&1 \
  || { tail -20 "$STATE/prometheus-build.log" >&2; fail "building $PROM_IMAGE"; }
ok "$PROM_IMAGE: $(dk run --rm --network none "$PROM_IMAGE" --version 2>&1 | head -1)"
{
  echo "services:"
  echo "  prometheus:"
  echo "    image: $PROM_IMAGE"
  if ((OWN_DOCKERD)); then
    # A fixed subnet, whose gateway is the daemon's --host-gateway-ip.
    echo "networks:"
    echo "  default:"
    echo "    ipam:"
    echo "      config:"
    echo "        - subnet: $COMPOSE_NET"
  fi
} >"$WORK/override-stack.yaml"
log "docker-compose up flowtel (on Podman) with its own config, deploy/config/flowtel-otlp.yaml, and prometheus (on Docker)"
DOCKER_HOST="unix://$PODMAN_SOCK" docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" up -d --no-deps --no-build flowtel >"$WORK/up.log" 2>&1 \
  || { cat "$WORK/up.log" >&2; fail "docker-compose up flowtel"; }
CID="$(compose_agent ps -q flowtel)"
wait_log "$CID" "flowtel running" 60
compose_stack up -d --no-deps --no-build prometheus >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "docker-compose up prometheus"; }
ok "flowtel and prometheus up; the compose file's Collector, Loki, Tempo and Grafana images are not in Debian: not started"
promql() { curl -sf --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query | jq -r '.data.result[0].value[1] // empty'; }
up=""
for _ in $(seq 1 120); do
  up="$(promql 'up{job="flowtel-self"}' 2>/dev/null || true)"
  [[ "$up" == 1 ]] && break
  sleep 0.5
done
[[ "$up" == 1 ]] || { curl -s http://127.0.0.1:9090/api/v1/targets | jq -c '.data.activeTargets[] | {job: .labels.job, health, lastError}' >&2; fail "Prometheus does not scrape the agent (up{job=\"flowtel-self\"} = ${up:-none})"; }
series="$(promql 'count({job="flowtel-self", __name__=~"flowtel_.+"})')"
[[ "${series:-0}" -gt 0 ]] || fail "no flowtel_* series from the agent in Prometheus"
rss="$(promql 'flowtel_process_memory_rss{job="flowtel-self"}')"
collector="$(curl -s http://127.0.0.1:9090/api/v1/targets | jq -r '.data.activeTargets[] | select(.labels.job == "otel-collector") | .health + (if .lastError != "" then " (" + .lastError + ")" else "" end)')"
ok "Prometheus (compose network) scrapes the agent at host.docker.internal:9465: up = 1, $series flowtel_* series, flowtel_process_memory_rss = $((${rss%.*} / 1000000)) MB; job otel-collector: ${collector:-none} (no Collector: \"unknown\" until its first scrape fails)"
pdk stop -t 30 "$CID" >/dev/null
exit_code="$(pdk inspect -f '{{.State.ExitCode}}' "$CID")"
[[ "$exit_code" == 0 ]] || { pdk logs "$CID" 2>&1 | tail -20 >&2; fail "the agent (compose config) exited $exit_code on docker stop"; }
ok "docker stop with the compose config too (OTLP to a Collector that is not there): exit code 0"
log "done: the image builds and the agent runs as the compose file runs it"
