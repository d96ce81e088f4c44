#!/usr/bin/env bash
# Installs everything the harness needs: Debian packages and the Python venv at .venv.
#
# Idempotent and fast on a machine that already has it all: the Debian packages are checked with one
# dpkg-query call, and the venv is trusted while .venv/.setup-stamp matches the hash of the files that
# define it (this script, requirements-dev.txt, requirements-lock.txt, the Python version).
#
# Environment:
#   PYTHON=python3        interpreter used to create the venv (3.11 on CI)
#   SETUP_FORCE=1         ignore the stamp and reinstall the venv packages
#   SETUP_SKIP_APT=1      do not touch Debian packages (for a machine where someone else manages them)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"

# make runs the harness; sqlite3, zstd and age are the archive tools the guide uses by hand; rsync and openssh
# make the backup server of the tests; prometheus brings promtool for the monitoring rules; python3-yaml is the
# YAML library of the target python (/usr/bin/python3) that modules run under on localhost.
APT_PACKAGES=(make sqlite3 zstd age rsync openssh-server openssh-client prometheus python3-yaml python3-boto3)

log() { printf '[setup] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

missing_apt_packages() {
    local pkg status
    for pkg in "${APT_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [ "$status" = "installed" ] || printf '%s\n' "$pkg"
    done
}

ensure_apt_packages() {
    if [ "${SETUP_SKIP_APT:-0}" = "1" ]; then
        return 0
    fi
    local missing
    missing="$(missing_apt_packages)"
    [ -z "$missing" ] && return 0
    # shellcheck disable=SC2086 # one package a word on purpose
    log "installing Debian packages: $(echo $missing)"
    export DEBIAN_FRONTEND=noninteractive
    # Some machines carry third-party apt sources that cannot be reached; the Debian mirror is what we need,
    # so a partial update is not fatal: the install below fails loudly if a package really cannot be had.
    as_root apt-get update -qq || log "apt-get update reported errors (unreachable extra sources?); going on"
    # shellcheck disable=SC2086
    as_root apt-get install -y -qq --no-install-recommends $missing
    missing="$(missing_apt_packages)"
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        log "still missing after apt-get install: $(echo $missing)" >&2
        return 1
    fi
}

stamp_value() {
    {
        cat "$ROOT/tools/setup.sh" "$ROOT/requirements-dev.txt" "$ROOT/requirements-lock.txt"
        "$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || echo "no venv python"
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    if [ "${SETUP_FORCE:-0}" != "1" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ]; then
        return 0
    fi
    if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        log "creating venv at .venv with $PYTHON ($("$PYTHON" -V 2>&1))"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing Python packages (requirements-dev.txt, constrained by requirements-lock.txt)"
    # This machine's pip configuration names extra local indexes that may not exist: drop pip's warnings on them.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/requirements-dev.txt" -c "$ROOT/requirements-lock.txt" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
    "$VENV/bin/python" -m pip check
    stamp_value >"$STAMP"
    log "venv ready: $("$VENV/bin/ansible" --version | sed -n 1p)"
}

ensure_local_dirs() {
    # ANSIBLE_HOME and Ansible's temp files live in the repo (ignored by git), never in ~.
    mkdir -p "$ROOT/.ansible/tmp"
}

ensure_apt_packages
ensure_venv
ensure_local_dirs
