#!/usr/bin/env bash
# Builds upstream etcd and Kubernetes binaries from the Go module proxy into
# ${FERROKUBE_CACHE:-~/.cache/ferrokube}/upstream/<kubernetes version>/bin.
#
#   hack/upstream/build.sh                 every binary
#   hack/upstream/build.sh etcd kubectl    only these
#   hack/upstream/build.sh --print-bin-dir print where the binaries go, build nothing
#
# The versions live in one place each: the `require` lines of kubernetes/go.mod, etcd/go.mod,
# metrics-server/go.mod and coredns/go.mod here.
# Only missing binaries are built; module and build caches live beside them, outside the repository.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
all=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kube-proxy kubelet metrics-server coredns)

die() { echo "hack/upstream: $*" >&2; exit 1; }

module_version() { # go.mod module path
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

k8s_version=$(module_version "$here/kubernetes/go.mod" k8s.io/kubernetes)
etcd_version=$(module_version "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)
metrics_server_version=$(module_version "$here/metrics-server/go.mod" sigs.k8s.io/metrics-server)
coredns_version=$(module_version "$here/coredns/go.mod" github.com/coredns/coredns)
[ -n "$k8s_version" ] || die "no k8s.io/kubernetes version in $here/kubernetes/go.mod"
[ -n "$etcd_version" ] || die "no go.etcd.io/etcd/server/v3 version in $here/etcd/go.mod"
[ -n "$metrics_server_version" ] || die "no sigs.k8s.io/metrics-server version in $here/metrics-server/go.mod"
[ -n "$coredns_version" ] || die "no github.com/coredns/coredns version in $here/coredns/go.mod"

cache=${FERROKUBE_CACHE:-$HOME/.cache/ferrokube}
bin_dir="$cache/upstream/$k8s_version/bin"

if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$bin_dir"
  exit 0
fi

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")
for name in "${wanted[@]}"; do
  [[ " ${all[*]} " == *" $name "* ]] || die "unknown binary '$name'; choose from: ${all[*]}"
done

missing=()
for name in "${wanted[@]}"; do
  [ -x "$bin_dir/$name" ] || missing+=("$name")
done
[ ${#missing[@]} -gt 0 ] || exit 0

command -v go >/dev/null 2>&1 || die "Go is not installed: install Go 1.26 or newer (the go.mod files here declare go 1.26.0) and run again"

export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin_dir" "$GOMODCACHE" "$GOCACHE"

minor=${k8s_version#v1.}; minor=${minor%%.*}
version_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for pkg in "${version_pkgs[@]}"; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
# metrics-server stamps client-go's version package with its own release, as its Makefile does.
metrics_server_ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version"
metrics_server_ldflags+=" -X k8s.io/client-go/pkg/version.gitTreeState=clean"
metrics_server_ldflags+=" -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z"
# CoreDNS's Makefile stamps coremain.GitCommit (its version string itself is a constant in coremain) and
# builds with the grpcnotrace tag.
coredns_flags() {
  local commit
  commit=$(cd "$here/coredns" && go mod download -json "github.com/coredns/coredns@$coredns_version" \
    | sed -n 's/.*"Hash": *"\([0-9a-f]\{7\}\).*/\1/p' | head -n 1)
  [ -n "$commit" ] || die "the Go module proxy gave no commit for github.com/coredns/coredns@$coredns_version"
  echo "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$commit"
}

echo "hack/upstream: building ${missing[*]} (Kubernetes $k8s_version, etcd $etcd_version," \
  "metrics-server $metrics_server_version, CoreDNS $coredns_version) into $bin_dir"
echo "hack/upstream: a first build downloads modules and compiles for several minutes per binary; later runs reuse the cache"
i=0
for name in "${missing[@]}"; do
  i=$((i + 1))
  start=$(date +%s)
  echo "hack/upstream: [$i/${#missing[@]}] $name ..."
  tags=""
  case "$name" in
    etcd) dir="$here/etcd"; pkg=go.etcd.io/etcd/server/v3; flags="-s -w" ;;
    coredns) dir="$here/coredns"; pkg=github.com/coredns/coredns; flags=$(coredns_flags); tags=grpcnotrace ;;
    metrics-server)
      dir="$here/metrics-server"; pkg=sigs.k8s.io/metrics-server/cmd/metrics-server; flags="$metrics_server_ldflags" ;;
    *) dir="$here/kubernetes"; pkg="k8s.io/kubernetes/cmd/$name"; flags="$ldflags" ;;
  esac
  # Build into a temporary name so an interrupted build never leaves a binary that looks complete.
  (cd "$dir" && go build -trimpath -tags "$tags" -ldflags "$flags" -o "$bin_dir/.$name.partial" "$pkg") \
    || die "building $name failed (see the Go output above)"
  mv "$bin_dir/.$name.partial" "$bin_dir/$name"
  echo "hack/upstream: [$i/${#missing[@]}] $name done in $(( $(date +%s) - start ))s"
done
