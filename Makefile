# The project's harness. `make test` is the one test command: it runs every suite and check, and fails if any
# fails. Every target first runs tools/setup.sh (Debian packages + .venv; a no-op in about a second when
# everything is there), then runs with the venv on PATH and Ansible pointed at this repo's ansible.cfg.

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

# The checks `make test` runs, in order.
TEST_STEPS := unit mutants integration sanity lint importer changelog-lint molecule
TEST_SUMMARY := $(BUILD_DIR)/test-summary.txt

# `make test` runs setup once, then each step with SKIP_SETUP=1.
SKIP_SETUP ?= 0

.PHONY: help setup lock unit integration sanity lint importer changelog-lint test molecule mutants demo bench clean distclean

help:
	@echo "make test            everything below, in order: $(TEST_STEPS)"
	@echo "make setup           Debian packages + .venv (tools/setup.sh)"
	@echo "make unit            pytest tests/unit"
	@echo "make integration     pytest tests/integration"
	@echo "make sanity          ansible-test sanity on the collection"
	@echo "make lint            ansible-lint --profile production over the repo"
	@echo "make importer        build the collection and run galaxy-importer on the tarball"
	@echo "make changelog-lint  antsibull-changelog lint (fragments and changelog.yaml)"
	@echo "make molecule        the molecule recovery scenarios on podman (tools/molecule.sh)"
	@echo "make mutants         break each safety promise on purpose (tests/mutants.yml); its tests must fail"
	@echo "make demo            ansible-playbook playbooks/demo.yml on the local inventory"
	@echo "make bench           python bench/run.py"
	@echo "make lock            refresh requirements-lock.txt from requirements-dev.txt"
	@echo "make clean           remove build output, demo data and caches (keeps .venv)"
	@echo "make distclean       clean, and remove .venv too"

setup:
	@if [ "$(SKIP_SETUP)" != "1" ]; then "$(ROOT)/tools/setup.sh"; fi

# pytest exits 5 when it collects no test: the suites are expected to have tests, so that fails too.
unit: setup
	@cd "$(ROOT)" && rc=0 && pytest tests/unit || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "unit: pytest collected no test in tests/unit" >&2; fi; exit $$rc

integration: setup
	@cd "$(ROOT)" && rc=0 && pytest tests/integration || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "integration: pytest collected no test in tests/integration" >&2; fi; exit $$rc

sanity: setup
	"$(ROOT)/tools/sanity.sh"

lint: setup
	cd "$(ROOT)" && ansible-lint --profile production

# galaxy-importer lint findings come out as WARNING lines but do not fail the import: count them as failures.
importer: setup
	rm -rf "$(BUILD_DIR)/importer"
	mkdir -p "$(BUILD_DIR)/importer"
	ansible-galaxy collection build "$(COLLECTION_DIR)" --output-path "$(BUILD_DIR)" --force
	cd "$(BUILD_DIR)/importer" && python -m galaxy_importer.main "$(COLLECTION_TARBALL)" | tee importer.log
	@if grep -E '^(WARNING|ERROR):' "$(BUILD_DIR)/importer/importer.log" >/dev/null; then \
		echo "importer: galaxy-importer reported warnings or errors (above)" >&2; exit 1; fi
	@grep -q 'Importer processing completed successfully' "$(BUILD_DIR)/importer/importer.log"

changelog-lint: setup
	cd "$(COLLECTION_DIR)" && antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# Runs every step even when one fails, so one run shows every failure; exits non-zero if any failed.
test: setup
	@mkdir -p "$(BUILD_DIR)"; : > "$(TEST_SUMMARY)"; failed=0; \
	for step in $(TEST_STEPS); do \
		echo; echo "=== make $$step ==="; start=$$(date +%s); \
		if $(MAKE) --no-print-directory SKIP_SETUP=1 $$step; then result=ok; else result=FAILED; failed=$$((failed + 1)); fi; \
		printf '%-16s %-7s %5ss\n' "$$step" "$$result" "$$(( $$(date +%s) - start ))" >> "$(TEST_SUMMARY)"; \
	done; \
	echo; echo "=== make test summary ==="; cat "$(TEST_SUMMARY)"; \
	if [ "$$failed" -ne 0 ]; then echo "make test: $$failed of $(words $(TEST_STEPS)) steps FAILED"; exit 1; fi; \
	echo "make test: all $(words $(TEST_STEPS)) steps succeeded"

molecule: setup
	"$(ROOT)/tools/molecule.sh"

# Each mutation of tests/mutants.yml on a scratch copy, its tests must fail; MUTANTS_WORKERS=2 by default.
mutants: setup
	cd "$(ROOT)" && python tools/mutants.py

demo: setup
	cd "$(ROOT)" && ansible-playbook playbooks/demo.yml

bench: setup
	cd "$(ROOT)" && python bench/run.py

# Re-resolve the direct pins of requirements-dev.txt in a scratch venv and write every resulting version.
lock:
	rm -rf "$(BUILD_DIR)/lock-venv"
	python3 -m venv "$(BUILD_DIR)/lock-venv"
	"$(BUILD_DIR)/lock-venv/bin/python" -m pip install --quiet -r "$(ROOT)/requirements-dev.txt"
	{ echo "# Every package of the .venv, pinned: generated by \`make lock\` from requirements-dev.txt. Do not edit by hand."; \
	  "$(BUILD_DIR)/lock-venv/bin/python" -m pip freeze; } > "$(ROOT)/requirements-lock.txt"
	rm -rf "$(BUILD_DIR)/lock-venv"

clean:
	rm -rf "$(BUILD_DIR)" "$(ROOT)/demo" "$(ROOT)/.ansible" "$(ROOT)/.pytest_cache" "$(COLLECTION_DIR)/tests/output"
	find "$(ROOT)" -path "$(VENV)" -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
