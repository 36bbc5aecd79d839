#!/usr/bin/env bash
# Installs everything flowtel needs on Debian/Ubuntu and builds it:
# Debian packages (clang, llvm, libbpf-dev, libelf-dev, zlib1g-dev, bpftool),
# npm dependencies, then the eBPF programs, the native addon and the TypeScript.
#   bash deploy/install.sh               # to run the agent
#   bash deploy/install.sh --test-tools  # also the tools the test suite and bench/ use
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool make g++ python3 pkg-config iproute2)
if [[ "${1:-}" == "--test-tools" ]]; then
  packages+=(nftables iperf3 wrk dnsmasq-base bind9-dnsutils dnsperf util-linux procps openssl conntrack prometheus systemd docker-compose)
  packages+=(nginx-light jq curl) # bench/ (bash bench/run.sh)
  packages+=(docker.io podman debootstrap) # the image, built and run without a registry: deploy/docker/smoke-test.sh
  packages+=(containerd runc busybox-static) # container processor tests: a real containerd and its CRI
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "flowtel: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
npm run build
if [[ "${1:-}" == "--test-tools" ]]; then bash deploy/tools/fetch-helm.sh; fi  # helm for the chart tests
echo "flowtel: built. Run it with: sudo ./bin/flowtel run"
