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

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Only what is missing: a machine that has etcd but not the binaries (or the reverse) needs
# neither root nor the network for the part it already has.
NEED_PKGS=()
command -v etcd >/dev/null || NEED_PKGS+=(etcd-server)
if ! have_all; then
  for p in golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev; do
    pkg_installed "$p" || NEED_PKGS+=("$p")
  done
fi

if ! have_all; then
  # 1. deb-src entries: the machine ships only binary sources.
  SRC_LIST=/etc/apt/sources.list.d/fusioninfer-src.sources
  if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null \
     && ! grep -qs "^deb-src" /etc/apt/sources.list; then
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
    NEED_UPDATE=1
  fi
fi

if [ "${#NEED_PKGS[@]}" -gt 0 ] || [ -n "${NEED_UPDATE:-}" ] || ! have_all; then
  step "apt-get update"
  $SUDO apt-get update -qq
fi
if [ "${#NEED_PKGS[@]}" -gt 0 ]; then
  step "installing ${NEED_PKGS[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${NEED_PKGS[@]}" >/dev/null
  # etcd-server starts a system service on install on some images; we run our own.
  $SUDO systemctl stop etcd 2>/dev/null || true
fi

if have_all; then
  step "binaries already cached in $CACHE_DIR"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fusioninfer-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
step "fetching Debian source package kubernetes=$DEB_VERSION"
if ! apt-get source -qq --download-only "kubernetes=$DEB_VERSION" >/dev/null 2>&1; then
  # A later security upload replaces the pinned revision on the mirrors; any "really1.20.2"
  # revision is the same Kubernetes. Refuse anything else: the flags and traps are for 1.20.2.
  AVAILABLE=$(apt-cache showsrc kubernetes | sed -n 's/^Version: //p' | grep 'really1\.20\.2' | head -n1 || true)
  if [ -z "$AVAILABLE" ]; then
    echo "[build-k8s] no Debian source of Kubernetes 1.20.2 available (wanted $DEB_VERSION)" >&2
    exit 1
  fi
  step "pinned revision gone from the mirror; using kubernetes=$AVAILABLE"
  apt-get source -qq --download-only "kubernetes=$AVAILABLE" >/dev/null
fi
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
