# The project's harness. `make test` is the one test command: it runs every suite and check, and fails if any
# fails. Every target first runs `tools/setup.sh TARGET` (the target's Debian packages from tools/packages.txt +
# .venv; a no-op in about a second when everything is there), so the steps pass in any order on a fresh machine,
# then runs with the venv on PATH and Ansible pointed at this repo's ansible.cfg.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
BUILD_DIR := $(ROOT)/build
COLLECTION_DIR := $(ROOT)/collections/ansible_collections/devops/reddit_backup
COLLECTION_VERSION = $(shell sed -n 's/^version: *//p' $(COLLECTION_DIR)/galaxy.yml)
COLLECTION_TARBALL = $(BUILD_DIR)/devops-reddit_backup-$(COLLECTION_VERSION).tar.gz

export PATH := $(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export ANSIBLE_HOME := $(ROOT)/.ansible
export ANSIBLE_LOCAL_TEMP := $(ROOT)/.ansible/tmp
export GALAXY_IMPORTER_CONFIG := $(ROOT)/tools/galaxy-importer.cfg
export GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP := $(ROOT)/.ansible/tmp
export PYTHONDONTWRITEBYTECODE := 1

# The checks `make test` runs, in order (each installs what it needs, so any order works).
TEST_STEPS := unit mutants integration sanity lint importer changelog-lint docs matrix molecule
TEST_SUMMARY := $(BUILD_DIR)/test-summary.txt

# SKIP_SETUP=1: run with what is installed (no apt, no pip).
SKIP_SETUP ?= 0
# `$(call setup_for,STEP)`: the Debian packages of STEP and the venv.
setup_for = @if [ "$(SKIP_SETUP)" != "1" ]; then "$(ROOT)/tools/setup.sh" $(1); fi

.PHONY: help setup lock unit mutants integration sanity lint importer changelog-lint docs matrix test molecule demo \
	bench bench-memory fresh-check print-test-steps clean distclean

help:
	@echo "make test            everything below, in order: $(TEST_STEPS)"
	@echo "make setup           base Debian packages + .venv (tools/setup.sh; each target installs its own)"
	@echo "make unit            pytest tests/unit"
	@echo "make integration     pytest tests/integration"
	@echo "make sanity          ansible-test sanity on the collection"
	@echo "make lint            ansible-lint --profile production over the repo"
	@echo "make importer        build the collection and run galaxy-importer on the tarball"
	@echo "make changelog-lint  antsibull-changelog lint (fragments and changelog.yaml)"
	@echo "make docs            the HTML documentation site with antsibull-docs + Sphinx (build/docs/html)"
	@echo "make matrix          sanity, unit tests and modules on the oldest and newest supported ansible-core (tools/matrix.sh)"
	@echo "make molecule        the molecule recovery scenarios on podman (tools/molecule.py)"
	@echo "make mutants         break each safety promise on purpose (tests/mutants.yml); its tests must fail"
	@echo "make demo            ansible-playbook playbooks/demo.yml on the local inventory"
	@echo "make bench           python bench/run.py and bench/command.py, then the README figures from bench/results/measured.json"
	@echo "make bench-memory    the engine's peak memory at a 1 GB database (bench/run.py --only memory), then the README"
	@echo "make fresh-check     make demo and make test on a clean clone in a fresh Debian 12 root (slow)"
	@echo "make lock            refresh requirements-lock.txt from requirements-dev.txt"
	@echo "make clean           remove build output, demo data and caches (keeps .venv)"
	@echo "make distclean       clean, and remove .venv too"

setup:
	$(call setup_for,)

# pytest exits 5 when it collects no test: the suites are expected to have tests, so that fails too.
unit:
	$(call setup_for,unit)
	@cd "$(ROOT)" && rc=0 && pytest tests/unit || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "unit: pytest collected no test in tests/unit" >&2; fi; exit $$rc

# Test files run INTEGRATION_JOBS at a time (pytest-xdist, one file per worker so a file's fixtures are made
# once): most of a test's time is ansible-playbook and its modules waiting on subprocesses, one core at most.
INTEGRATION_JOBS ?= 2
integration:
	$(call setup_for,integration)
	@cd "$(ROOT)" && rc=0 && pytest -n "$(INTEGRATION_JOBS)" --dist loadfile tests/integration || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "integration: pytest collected no test in tests/integration" >&2; fi; exit $$rc

sanity:
	$(call setup_for,sanity)
	"$(ROOT)/tools/sanity.sh"

# awx/apply.yml's modules resolve from awx.awx, unpacked from the pinned ansible package (tools/awx_collection.py).
lint:
	$(call setup_for,lint)
	cd "$(ROOT)" && awx="$$(python tools/awx_collection.py)" && \
	ANSIBLE_COLLECTIONS_PATH="$(ROOT)/collections:$$awx" ansible-lint --profile production

# galaxy-importer lint findings come out as WARNING lines but do not fail the import: count them as failures.
importer:
	$(call setup_for,importer)
	rm -rf "$(BUILD_DIR)/importer"
	mkdir -p "$(BUILD_DIR)/importer"
	ansible-galaxy collection build "$(COLLECTION_DIR)" --output-path "$(BUILD_DIR)" --force
	cd "$(BUILD_DIR)/importer" && python -m galaxy_importer.main "$(COLLECTION_TARBALL)" | tee importer.log
	@if grep -E '^(WARNING|ERROR):' "$(BUILD_DIR)/importer/importer.log" >/dev/null; then \
		echo "importer: galaxy-importer reported warnings or errors (above)" >&2; exit 1; fi
	@grep -q 'Importer processing completed successfully' "$(BUILD_DIR)/importer/importer.log"

changelog-lint:
	$(call setup_for,changelog-lint)
	cd "$(COLLECTION_DIR)" && antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

docs:
	$(call setup_for,docs)
	"$(ROOT)/tools/docs.sh"

matrix:
	$(call setup_for,matrix)
	"$(ROOT)/tools/matrix.sh"

# Runs every step even when one fails, so one run shows every failure; exits non-zero if any failed. Each step
# sets up what it needs itself (its time includes that), which proves the steps do not lean on each other.
test:
	@mkdir -p "$(BUILD_DIR)"; : > "$(TEST_SUMMARY)"; failed=0; \
	for step in $(TEST_STEPS); do \
		echo; echo "=== make $$step ==="; start=$$(date +%s); \
		if $(MAKE) --no-print-directory SKIP_SETUP=$(SKIP_SETUP) $$step; then result=ok; else result=FAILED; failed=$$((failed + 1)); fi; \
		printf '%-16s %-7s %5ss\n' "$$step" "$$result" "$$(( $$(date +%s) - start ))" >> "$(TEST_SUMMARY)"; \
	done; \
	echo; echo "=== make test summary ==="; cat "$(TEST_SUMMARY)"; \
	if [ "$$failed" -ne 0 ]; then echo "make test: $$failed of $(words $(TEST_STEPS)) steps FAILED"; exit 1; fi; \
	echo "make test: all $(words $(TEST_STEPS)) steps succeeded"

molecule:
	$(call setup_for,molecule)
	python3 "$(ROOT)/tools/molecule.py"

# Each mutation of tests/mutants.yml on a scratch copy, its tests must fail; MUTANTS_WORKERS=2 by default.
mutants:
	$(call setup_for,mutants)
	cd "$(ROOT)" && python tools/mutants.py

demo:
	$(call setup_for,demo)
	cd "$(ROOT)" && ansible-playbook playbooks/demo.yml

bench:
	$(call setup_for,bench)
	cd "$(ROOT)" && python bench/run.py && python bench/command.py && python tools/render_measurements.py

# Not in `make bench`: a 1 GB app of its own (its own workdir, so the default run's cached 400 MB app stays).
bench-memory:
	$(call setup_for,bench)
	cd "$(ROOT)" && python bench/run.py --only memory --db-size-mb 1024 --repeat 1 \
		--workdir /tmp/reddit-backup-bench-1g && python tools/render_measurements.py

# The steps of `make test`, one a line (tools/fresh-check.sh leaves some out inside its root).
print-test-steps:
	@printf '%s\n' $(TEST_STEPS)

# The README's two commands on a clean clone of HEAD in a fresh Debian 12 root (debootstrap chroot); slow.
fresh-check:
	$(call setup_for,fresh-check)
	"$(ROOT)/tools/fresh-check.sh"

# Re-resolve the direct pins of requirements-dev.txt in a scratch venv and write every resulting version.
lock:
	rm -rf "$(BUILD_DIR)/lock-venv"
	python3 -m venv "$(BUILD_DIR)/lock-venv"
	"$(BUILD_DIR)/lock-venv/bin/python" -m pip install --quiet -r "$(ROOT)/requirements-dev.txt"
	{ echo "# Every package of the .venv, pinned: generated by \`make lock\` from requirements-dev.txt. Do not edit by hand."; \
	  "$(BUILD_DIR)/lock-venv/bin/python" -m pip freeze; } > "$(ROOT)/requirements-lock.txt"
	rm -rf "$(BUILD_DIR)/lock-venv"

clean:
	@if findmnt -rn -o TARGET | grep -q "^$(BUILD_DIR)/"; then \
		echo "clean: something is mounted under build/ (an interrupted fresh-check?): unmount it first" >&2; exit 1; fi
	rm -rf --one-file-system "$(BUILD_DIR)" "$(ROOT)/demo" "$(ROOT)/.venv-matrix" "$(ROOT)/.ansible" "$(ROOT)/.pytest_cache" "$(COLLECTION_DIR)/tests/output"
	find "$(ROOT)" -path "$(VENV)" -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
