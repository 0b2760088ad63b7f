#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages ferrokube needs, only those missing; silent when all are present.
# Checks that the Go and Rust toolchains are on PATH (they are not Debian packages here).
set -euo pipefail

packages=(
  protobuf-compiler          # containerd-client's build script runs protoc
  containerd runc            # the kubelet's container runtime
  containernetworking-plugins # bridge, host-local, loopback, portmap for pod networking
  iptables iproute2          # kube-proxy and pod networking
  busybox-static             # the test image's /bin/busybox; httpd/wget in the sandbox tests
  ca-certificates curl
)

missing=()
for package in "${packages[@]}"; do

  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "hack/deps.sh: missing packages ${missing[*]}: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "hack/deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null 2>&1 || { echo "hack/deps.sh: Go is not installed: install Go 1.26 or newer and put it on PATH" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || { echo "hack/deps.sh: Rust is not installed: install it with rustup (Rust 1.89 or newer) and put cargo on PATH" >&2; exit 1; }
