#!/usr/bin/env bash
# Builds the control-plane binaries that controller-runtime's envtest needs
# (kube-apiserver and etcd) from Go modules into a cache directory, once, and
# prints that directory. Later runs reuse the cache and print it at once.
#
#   KUBEBUILDER_ASSETS=$(kubernetes/hack/envtest-assets.sh) go test ./...
#
# Why build: setup-envtest downloads prebuilt binaries, which this machine and
# CI cannot reach; the Go module proxy serves the sources. A cold build takes
# several minutes on 2 cores (kube-apiserver dominates); see kubernetes/README.md.
#
# Environment:
#   SERVINGKIT_ENVTEST_CACHE  cache root (default $HOME/.cache/servingkit/envtest)
set -euo pipefail

K8S_VERSION=v1.37.1      # k8s.io/kubernetes; v1.37.2's module zip is refused by the proxy
STAGING_VERSION=v0.37.1  # the k8s.io/* staging modules that v1.37.1 publishes
ETCD_VERSION=v3.7.3      # go.etcd.io/etcd/server/v3

root="${SERVINGKIT_ENVTEST_CACHE:-$HOME/.cache/servingkit/envtest}"
dir="$root/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
mkdir -p "$dir"

# One builder at a time per cache directory (CI and a developer may overlap).
exec 9>"$dir/.lock"
flock 9

if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; then
  echo "$dir"
  exit 0
fi

log() { echo "envtest-assets: $*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

if [ ! -x "$dir/etcd" ]; then
  log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
  start=$SECONDS
  mkdir -p "$work/etcd"
  cat >"$work/etcd/go.mod" <<MOD
module servingkit.local/envtest-etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  (cd "$work/etcd" && go build -trimpath -ldflags='-s -w' -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$dir/etcd.tmp" "$dir/etcd"
  log "etcd built in $((SECONDS - start))s"
fi

if [ ! -x "$dir/kube-apiserver" ]; then
  log "building kube-apiserver $K8S_VERSION (k8s.io/kubernetes, staging $STAGING_VERSION)"
  start=$SECONDS
  mkdir -p "$work/k8s"
  # The staging modules live in k8s.io/kubernetes' tree behind ./staging
  # replace directives, which a module zip does not carry; point each at its
  # published version instead.
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "module servingkit.local/envtest-kube-apiserver"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$modfile"
    echo ")"
  } >"$work/k8s/go.mod"
  n=$(grep -c ' => ' "$work/k8s/go.mod")
  log "$n staging replace lines"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
  (cd "$work/k8s" && go build -trimpath -ldflags="$ldflags" -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
  log "kube-apiserver built in $((SECONDS - start))s"
fi

echo "$dir"
