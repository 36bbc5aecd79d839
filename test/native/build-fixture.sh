#!/usr/bin/env bash
# Builds the BPF fixture used by the native addon tests (dist/test/native/).
# Needs clang, bpftool and /sys/kernel/btf/vmlinux. Outputs go to
# test/native/fixtures/.output/ (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
make -s -C "$here/fixtures"
if [ ! -f "$here/../../native/build/Release/flowtel_native.node" ]; then
  echo "build-fixture.sh: note: native addon not built yet (npm run build:native)" >&2
fi
