#!/usr/bin/env bash
# Regenerates everything derived from pkg/apis: deepcopy functions, the typed
# clientset, listers, informers and apply configurations (k8s.io/code-generator),
# and the CRD YAML (controller-gen) in deploy/crds with its copy in the Helm chart.
#
# OUTPUT_ROOT lets verify-codegen.sh generate into a scratch copy of the repo.
set -euo pipefail

ROOT="${OUTPUT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
CONTROLLER_TOOLS_VERSION="${CONTROLLER_TOOLS_VERSION:-v0.19.0}"
MODULE="cvmanager.dev/cvmanager"
cd "$ROOT"

# `go list -m -f {{.Dir}}` prints nothing while the module is not in the module
# cache yet (a fresh machine); `go mod download -json` fetches it first and then
# names its directory, at the version go.mod pins.
CODEGEN_PKG="$(go mod download -json k8s.io/code-generator | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
if [[ -z "$CODEGEN_PKG" || ! -f "$CODEGEN_PKG/kube_codegen.sh" ]]; then
  echo "cannot find kube_codegen.sh of k8s.io/code-generator (go mod download gave '$CODEGEN_PKG')" >&2
  exit 1
fi
# shellcheck source=/dev/null
source "${CODEGEN_PKG}/kube_codegen.sh"

kube::codegen::gen_helpers \
  --boilerplate "$ROOT/codegen/boilerplate.go.txt" \
  "$ROOT/pkg/apis"

kube::codegen::gen_client \
  --with-watch \
  --with-applyconfig \
  --output-dir "$ROOT/pkg/generated" \
  --output-pkg "$MODULE/pkg/generated" \
  --boilerplate "$ROOT/codegen/boilerplate.go.txt" \
  "$ROOT/pkg/apis"

echo "Generating CRDs with controller-gen $CONTROLLER_TOOLS_VERSION" >&2
rm -rf "$ROOT/deploy/crds"
go run "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION" \
  crd paths=./pkg/apis/... output:crd:dir=./deploy/crds

# The chart ships the same CRD; it is copied, never edited by hand.
mkdir -p "$ROOT/charts/cvmanager/crds"
rm -f "$ROOT/charts/cvmanager/crds/"*.yaml
cp "$ROOT/deploy/crds/"*.yaml "$ROOT/charts/cvmanager/crds/"
