#!/usr/bin/env bash
# Builds the binaries of a real local Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) and kwok from the Go module proxy,
# and caches them by version so only a cold machine pays the ~13 minute build.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging modules),
# so it is built inside a throwaway wrapper module that pins every staging module.
# kwok gets its own module so it does not move dependencies of the Kubernetes binaries.
#
# Usage: hack/build-control-plane.sh        prints the bin directory on the last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE_ROOT="${CVMANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvmanager}"
STAGING_VERSION="v0${K8S_VERSION#v1}"   # v1.34.4 -> v0.34.4

K8S_DIR="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
KWOK_DIR="$CACHE_ROOT/kwok-$KWOK_VERSION"
BIN_DIR="$CACHE_ROOT/bin-$K8S_VERSION-$ETCD_VERSION-$KWOK_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

log() { echo "[control-plane] $(date +%H:%M:%S) $*" >&2; }

have_all() {
  for b in "${K8S_BINS[@]}" kwok; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
  [[ -d "$BIN_DIR/kwok-stages" ]]
}

write_wrapper_module() {
  mkdir -p "$K8S_DIR/src"
  cd "$K8S_DIR/src"
  [[ -f go.mod ]] && return 0
  log "writing wrapper module for k8s.io/kubernetes $K8S_VERSION"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  {
    echo "module cvmanager.local/k8s-wrapper"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/' "$gomod" |
      awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod.tmp
  mv go.mod.tmp go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools
GO
}

build_k8s() {
  write_wrapper_module
  cd "$K8S_DIR/src"
  log "resolving modules (kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
  go get "k8s.io/kubernetes@$K8S_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  local ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${K8S_VERSION#v1.}"
    ldflags="${ldflags%.*}"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$BIN_DIR"
  local b pkg
  for b in "${K8S_BINS[@]}"; do
    [[ -x "$BIN_DIR/$b" ]] && continue
    case "$b" in
      etcd) pkg="go.etcd.io/etcd/server/v3" ;;
      *) pkg="k8s.io/kubernetes/cmd/$b" ;;
    esac
    log "building $b (cold builds take minutes; kube-apiserver ~6 min on 2 cores)"
    local start=$SECONDS
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$b.tmp" "$pkg" >&2
    mv "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
    log "built $b in $((SECONDS - start))s"
  done
}

build_kwok() {
  mkdir -p "$KWOK_DIR"
  cd "$KWOK_DIR"
  [[ -f go.mod ]] || go mod init cvmanager.local/kwok-wrapper >&2
  if [[ ! -x "$BIN_DIR/kwok" ]]; then
    log "building kwok $KWOK_VERSION"
    local start=$SECONDS
    go get "sigs.k8s.io/kwok@$KWOK_VERSION" >&2
    CGO_ENABLED=0 go build -mod=mod -trimpath -o "$BIN_DIR/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok >&2
    mv "$BIN_DIR/kwok.tmp" "$BIN_DIR/kwok"
    log "built kwok in $((SECONDS - start))s"
  fi
  # The kwok stage definitions ship in its module source; keep a copy beside the binary
  # (also when only the copy is missing, e.g. a cache from an older version of this script).
  local src
  src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  mkdir -p "$BIN_DIR/kwok-stages"
  cp -r "$src/kustomize/stage/." "$BIN_DIR/kwok-stages/"
  chmod -R u+w "$BIN_DIR/kwok-stages"
}

if ! have_all; then
  command -v go >/dev/null || { echo "go is required" >&2; exit 1; }
  build_k8s
  build_kwok
fi
have_all
echo "$BIN_DIR"
