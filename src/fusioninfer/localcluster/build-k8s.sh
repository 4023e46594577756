#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from Debian's own
# source package (no binary downloads are possible on our machines) and cache them.
#
# Usage: build-k8s.sh CACHE_DIR
# Idempotent: exits at once when the three binaries are already in CACHE_DIR.
# Needs root (apt-get) on a machine that has none of the ingredients yet.
set -euo pipefail

CACHE_DIR=${1:?usage: build-k8s.sh CACHE_DIR}
DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$CACHE_DIR/$b" ] || return 1; done
}
if have_all && command -v etcd >/dev/null; then
  echo "[build-k8s] cached binaries found in $CACHE_DIR"
  exit 0
fi

step() { echo "[build-k8s] $(date +%H:%M:%S) $*"; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# 1. deb-src entries: the machine ships only binary sources.
SRC_LIST=/etc/apt/sources.list.d/fusioninfer-src.sources
if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null; then
  step "adding deb-src entries ($SRC_LIST)"
  $SUDO tee "$SRC_LIST" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

step "apt-get update"
$SUDO apt-get update -qq
step "installing build ingredients (golang-go, etcd-server, rsync, jq, reflect2)"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev >/dev/null
# etcd-server starts a system service on install on some images; we run our own.
$SUDO systemctl stop etcd 2>/dev/null || true

if have_all; then
  step "binaries already cached"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fusioninfer-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
step "fetching Debian source package kubernetes=$DEB_VERSION"
apt-get source -qq --download-only "kubernetes=$DEB_VERSION" >/dev/null
dpkg-source --no-check -x ./*.dsc src >/dev/null
cd src

step "replacing vendored reflect2 v1.0.1 with Debian's v1.0.2 (Go 1.19 crash fix)"
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/go.mod

step "building ${BINARIES[*]} (GOPATH mode, as debian/rules does; ~7 min on 2 cores)"
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
mkdir -p "$WORK/home"
GOPATH=$PWD/.go GO111MODULE=off CGO_ENABLED=0 HOME="$WORK/home" GOFLAGS="" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" GOLDFLAGS="-s -w"

mkdir -p "$CACHE_DIR"
for b in "${BINARIES[@]}"; do
  install -m 0755 "_output/bin/$b" "$CACHE_DIR/$b.tmp"
  mv "$CACHE_DIR/$b.tmp" "$CACHE_DIR/$b"
done
step "done: $(ls "$CACHE_DIR")"
