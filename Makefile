# netstack.tcp_tuning — every target installs what it needs; only python3 and apt are assumed.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(CURDIR)/$(VENV)/bin
CACHE       := $(CURDIR)/.cache
VERSION     := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL     := $(CACHE)/dist/netstack-tcp_tuning-$(VERSION).tar.gz
INSTALLED   := $(CACHE)/installed
# A path where the working tree itself is importable as ansible_collections.netstack.tcp_tuning
DEVPATH     := $(CACHE)/dev
DEVLINK     := $(DEVPATH)/ansible_collections/netstack/tcp_tuning
TARGET_CONNECTIONS ?= 100000
# The older ansible-core releases `make compat` tests, each in its own venv (requirements/coreX.Y.txt, kept machine-wide: tests/run-compat.sh);
# the newest is the dev venv's (requirements.txt), tested by unit, integration and sanity.
COMPAT_CORES ?= 2.16 2.17 2.18

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(DEVPATH)
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

.PHONY: help venv hostdeps devlink lint sanity unit integration compat docs generate build molecule proof test run bench clean

help:
	@echo "make run   - install what is needed, then dry-run the tune playbook on localhost (check mode)"
	@echo "make test  - lint, sanity, unit, real-kernel integration, compat (ansible-core 2.16-2.18), docs; molecule alongside"
	@echo "stages: make venv lint sanity unit integration compat docs molecule proof bench build clean"
	@echo "make generate - rewrite the files derived from the workload schema"
	@echo "make proof - the kernel experiments docs/recommendation-model.md quotes (not part of make test)"

$(VENV)/.stamp: requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

venv: $(VENV)/.stamp

hostdeps:
	tests/hosts/install-deps.sh

devlink:
	mkdir -p $(dir $(DEVLINK))
	ln -sfn $(CURDIR) $(DEVLINK)

lint: venv devlink
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production

sanity: venv hostdeps
	tests/run-sanity.sh $(BIN)

unit: venv devlink
	$(BIN)/pytest tests/unit

# Each test makes its own namespaces, directories and processes, so they run side by side (pytest-xdist):
# much of a test is waiting for ansible processes, timeouts and the kernel. INTEGRATION_WORKERS=0 runs them in order.
INTEGRATION_WORKERS ?= 2
integration: venv devlink hostdeps
	$(BIN)/pytest -p no:cacheprovider -n $(INTEGRATION_WORKERS) --dist worksteal tests/integration

build: venv
	mkdir -p $(CACHE)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(CACHE)/dist .

$(TARBALL): build

# antsibull-docs and galaxy-importer in their own venv (requirements/docs-tools.txt says why)
# Kept machine-wide like the guest images, keyed by its requirements (tests/tool-venv-dir.sh says where).
DOCS_TOOLS  := $(shell PYTHON=$(PYTHON) tests/tool-venv-dir.sh docs-tools requirements/docs-tools.txt requirements/docs-tools-constraints.txt)
$(DOCS_TOOLS)/.stamp: requirements/docs-tools.txt requirements/docs-tools-constraints.txt
	test -x $(DOCS_TOOLS)/bin/python || $(PYTHON) -m venv $(DOCS_TOOLS)
	$(DOCS_TOOLS)/bin/python -m pip install --quiet -r requirements/docs-tools.txt -c requirements/docs-tools-constraints.txt
	touch $@

docs: build $(DOCS_TOOLS)/.stamp
	rm -rf $(INSTALLED)
	ANSIBLE_COLLECTIONS_PATH=$(INSTALLED) $(BIN)/ansible-galaxy collection install --force -p $(INSTALLED) $(TARBALL)
	tests/check-docs.sh $(BIN) $(INSTALLED) $(TARBALL) $(DOCS_TOOLS)/bin

# The files generated from the workload schema (plugins/plugin_utils/tcp_memory_workload.py); a unit test
# fails when one differs from what this writes.
generate: venv devlink
	PYTHONPATH=$(DEVPATH) $(BIN)/python -m ansible_collections.netstack.tcp_tuning.tests.tools.generate_workload

# Every scenario but the proof ones, side by side where two cores allow (tests/run-molecule.sh);
# MOLECULE_SCENARIOS picks some by name.
molecule: venv devlink hostdeps
	tests/run-molecule.sh $(BIN) $(MOLECULE_SCENARIOS)

# Evidence about the kernel, not a test of the collection: the threshold probe's throughput between
# the tcp_mem thresholds (molecule/thresholds; its results are recorded in docs/recommendation-model.md).
proof: venv devlink hostdeps
	tests/run-molecule.sh $(BIN) thresholds

# what touches the controller's ansible-core (the filter through Templar, the modules' entry points, the role,
# the playbooks) under each older ansible-core release (test ids end in [coreX.Y.Z]); see tests/run-compat.sh
compat: devlink hostdeps
	PYTHON=$(PYTHON) tests/run-compat.sh $(COMPAT_CORES)

# Every stage in order, each timed; the times are printed at the end, also when a stage failed.
test: venv devlink hostdeps
	tests/run-stages.sh --alongside molecule lint sanity unit integration compat docs
	@echo "make test: all stages passed"

run: build
	rm -rf $(INSTALLED)
	ANSIBLE_COLLECTIONS_PATH=$(INSTALLED) $(BIN)/ansible-galaxy collection install --force -p $(INSTALLED) $(TARBALL)
	ANSIBLE_COLLECTIONS_PATH=$(INSTALLED) $(BIN)/ansible-playbook netstack.tcp_tuning.tune \
	  -i localhost, -c local --check --diff \
	  -e 'ansible_python_interpreter={{ ansible_playbook_python }}' \
	  -e tcp_memory_connections=$(TARGET_CONNECTIONS)

bench: venv devlink hostdeps
	benchmarks/run.sh $(BIN) $(BENCH_ARGS)

clean:
	rm -rf $(CACHE) collections .pytest_cache .ruff_cache .hypothesis
