#!/usr/bin/env bash
# The whole test suite against the real kernel (root, BPF, network namespaces).
# No test is skipped: if eBPF cannot load here, the suite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist/test
npm run build >/dev/null
bash test/native/build-fixture.sh
mapfile -t files < <(find dist/test -name "*.test.js" | sort)
node --test --test-concurrency=1 --test-timeout=180000 "${files[@]}"
