#!/usr/bin/env bash
# Builds helm from the Go module proxy into the cache (once per version) and
# prints its path. `go install pkg@version` uses helm's own module graph, so
# helm's dependencies stay out of cvmanager's go.mod.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
CACHE_ROOT="${CVMANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvmanager}"
DIR="$CACHE_ROOT/helm-$HELM_VERSION"
BIN="$DIR/helm"
if [[ ! -x "$BIN" ]]; then
  mkdir -p "$DIR"
  echo "[helm] building helm $HELM_VERSION (first run only, ~2 min)" >&2
  GOBIN="$DIR" CGO_ENABLED=0 go install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi
echo "$BIN"
