#!/usr/bin/env bash
# Regenerate this wrapper module for another Kubernetes release: hack/kubernetes/update.sh v1.33.13
# Every `k8s.io/X => ./staging/src/k8s.io/X` replace of that release's go.mod becomes
# `k8s.io/X => k8s.io/X v0.MINOR.PATCH` (the published staging modules), then `go mod tidy`
# writes go.sum. Update KUBERNETES_VERSION in dev/src/fusioninfer_dev/localcluster/build.py to match.
set -euo pipefail
VERSION=${1:?usage: update.sh v1.MINOR.PATCH}
STAGING="v0.${VERSION#v1.}"
cd "$(dirname "$0")"
GOMOD=$(go mod download -json "k8s.io/kubernetes@${VERSION}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
GO_LINE=$(grep -m1 '^go ' "$GOMOD")
GODEBUG_LINE=$(grep -m1 '^godebug ' "$GOMOD" || true)
{
  echo "// Wrapper module: builds the Kubernetes control plane from the Go module proxy."
  echo "// k8s.io/kubernetes replaces its staging modules with ./staging/...; here each is replaced"
  echo "// by its published ${STAGING%.*}.N release. Regenerate with hack/kubernetes/update.sh."
  echo "module fusioninfer.dev/hack/kubernetes"
  echo
  echo "$GO_LINE"
  [ -n "$GODEBUG_LINE" ] && { echo; echo "$GODEBUG_LINE"; }
  echo
  echo "require k8s.io/kubernetes ${VERSION}"
  echo
  echo "tool ("
  for b in kube-apiserver kube-controller-manager kube-scheduler; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$b"; done
  echo ")"
  echo
  echo "replace ("
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$GOMOD" | awk -v v="$STAGING" '{print "\t"$1" => "$1" "v}'
  echo ")"
} > go.mod
rm -f go.sum
go mod tidy
echo "hack/kubernetes: now Kubernetes ${VERSION}"
