# The two front-door commands are `make up` and `make test`; both set up everything they need.
SHELL := /bin/bash
ACGS_CACHE ?= $(HOME)/.cache/acgs
VENV ?= $(ACGS_CACHE)/venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
export ACGS_CACHE

.PHONY: setup venv binaries node-deps up cluster cluster-down test unit integration e2e reliability cluster-test lint crds

venv:
	@test -x $(PY) || python3 -m venv $(VENV)
	@hack/install-python-deps.sh $(PY)
	@$(PY) hack/build_word_vectors.py

# With an existing cluster (ACGS_TEST_KUBECONFIG) the tests start no control plane: etcd and
# kube-apiserver are not built (kubectl from PATH is used).
BUILD_ARGS := $(if $(ACGS_TEST_KUBECONFIG),--only helm --only kind --only vegeta,)

binaries: venv
	@$(PY) -m acgs_operator dev build-binaries $(BUILD_ARGS)

# Debian packages of a real node (Docker engine, containerd, runc, CNI plugins, debootstrap, iptables)
node-deps:
	@hack/install-node-deps.sh

setup: venv binaries node-deps

up: setup
	$(VENV)/bin/acgs up

# A real single-node Kubernetes (kubelet + containerd) with cluster DNS and KubeRay, images built here
cluster: setup
	$(VENV)/bin/acgs dev cluster up

cluster-down: venv
	$(VENV)/bin/acgs dev cluster down

test: setup
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/pytest tests -m unit $(PYTEST_ARGS)

integration: setup
	$(VENV)/bin/pytest tests -m integration $(PYTEST_ARGS)

e2e: setup
	$(VENV)/bin/pytest tests -m e2e $(PYTEST_ARGS)

reliability: setup
	$(VENV)/bin/pytest tests -m reliability $(PYTEST_ARGS)

cluster-test: setup
	$(VENV)/bin/pytest tests -m cluster $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check operator workloads tests benchmarks hack
	$(VENV)/bin/mypy
	$(PY) -m acgs_operator crds check
	$(PY) hack/gen_api_reference.py --check
	$(PY) hack/render_install.py --check

# Everything generated from the API models: crds/, helm/acgs/crds/, docs/api-reference.md, manifests/install.yaml
crds: setup
	$(PY) -m acgs_operator crds generate
	$(PY) hack/gen_api_reference.py
	$(PY) hack/render_install.py

# Train all six components, serve three, call every route, write reports/pipeline/<timestamp>/
# (PIPELINE_ARGS="--profile small" for the CI-sized run).
PIPELINE_ARGS ?=
.PHONY: pipeline
pipeline: setup
	$(VENV)/bin/acgs pipeline $(PIPELINE_ARGS)
