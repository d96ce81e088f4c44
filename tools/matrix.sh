#!/usr/bin/env bash
# The supported-versions matrix (make matrix): for each supported ansible-core below the one in .venv, a venv
# under .venv-matrix/<version> with that ansible-core (pinned) and the unit suite's tools (pinned by
# requirements-lock.txt), then in it:
#   - ansible-test sanity, the tests whose verdict depends on the ansible-core version (MATRIX_SANITY_TESTS);
#   - the unit suite (tests/unit);
#   - the modules run through that version's ansible-playbook on Debian 12's /usr/bin/python3
#     (MATRIX_MODULE_TESTS: integration tests that drive every module on localhost).
# .venv's ansible-core (2.19) is covered by `make sanity`, `make unit` and `make integration`. ansible-core 2.20
# runs only on a Python 3.12 or newer controller, which Debian 12 lacks: its venv is made from a python3.12 or
# python3.13 found on PATH or under pyenv ($PYENV_ROOT or ~/.pyenv), and without one its checks are recorded as
# skipped; its sanity tests run on that controller Python, then compile and import again on the target 3.11.
# Then the modules' compile and import sanity tests on every target Python claimed (MATRIX_TARGET_PYTHONS) that
# this machine has; Debian 12's 3.11 must be there.
#
# Environment:
#   MATRIX_ANSIBLE_CORE     the ansible-core versions to test here (default: 2.16.19, the requires_ansible line,
#                           and 2.20.10, the newest line, where a Python 3.12+ controller can be found)
#   MATRIX_SANITY_TESTS     the ansible-test sanity tests run per version
#   MATRIX_TARGET_PYTHONS   target Pythons for the modules' compile/import tests (default 3.11, the one claimed;
#                           others, e.g. "3.11 3.12 3.13", are tested when this machine has them, skipped if not)
#   MATRIX_JOBS             pytest workers for the unit suite (it mostly waits on subprocesses and sleeps)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The oldest supported line (requires_ansible) and the newest by default; .venv has 2.19. One version costs about
# 5 to 12 minutes on 2 cores (venv, sanity venvs, unit suite), so the lines between run on demand:
#   make matrix MATRIX_ANSIBLE_CORE="2.16.19 2.17.14 2.18.19"
MATRIX_ANSIBLE_CORE="${MATRIX_ANSIBLE_CORE:-2.16.19 2.20.10}"
MATRIX_SANITY_TESTS="${MATRIX_SANITY_TESTS:-ansible-doc validate-modules runtime-metadata import compile}"
MATRIX_TARGET_PYTHONS="${MATRIX_TARGET_PYTHONS:-3.11}"
MATRIX_MODULE_TESTS="${MATRIX_MODULE_TESTS:-tests/integration/test_verify_module.py tests/integration/test_restore_module.py}"
MATRIX_JOBS="${MATRIX_JOBS:-4}"
SUMMARY="$ROOT/build/matrix-summary.txt"

log() { printf '[matrix] %s\n' "$*"; }

# The unit suite's tools at the lock's pins; ansible-core (and resolvelib, which older ansible-core caps) per version.
constraints_for() {
    local version="$1" file="$ROOT/build/matrix/constraints-$1.txt"
    mkdir -p "$ROOT/build/matrix"
    grep -v -i -e '^ansible-core==' -e '^resolvelib==' "$ROOT/requirements-lock.txt" >"$file"
    case "$version" in
        2.16.*|2.17.*|2.18.*) echo "resolvelib==1.0.1" >>"$file" ;;
        *) grep -i '^resolvelib==' "$ROOT/requirements-lock.txt" >>"$file" ;;
    esac
    printf '%s\n' "$file"
}

# The controller Python for an ansible-core version: Debian 12's python3 up to 2.19, a 3.12 or 3.13 from 2.20 on
# (none: returns 1).
controller_python() {
    local candidate
    case "$1" in
        2.1[6-9].*) command -v python3; return 0 ;;
    esac
    for candidate in python3.12 python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23].*/bin/python3.1[23]; do
        if "$candidate" -c 'import sqlite3, ssl, venv' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    local version="$1" python="$2" venv="$ROOT/.venv-matrix/$1" constraints stamp
    constraints="$(constraints_for "$version")"
    stamp="$( (cat "$constraints" "$ROOT/tools/matrix-requirements.txt"; "$python" -V) | sha256sum | cut -c1-16)"
    if [ -f "$venv/.matrix-stamp" ] && [ "$(cat "$venv/.matrix-stamp")" = "$stamp" ]; then
        return 0
    fi
    log "creating .venv-matrix/$version with $("$python" -V) ($python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ansible-core==$version" \
        -r "$ROOT/tools/matrix-requirements.txt" -c "$constraints" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
    "$venv/bin/python" -m pip check >/dev/null
    printf '%s\n' "$stamp" >"$venv/.matrix-stamp"
}

sanity_args() {
    local test args=()
    for test in $MATRIX_SANITY_TESTS; do args+=(--test "$test"); done
    printf '%s\n' "${args[@]}"
}

record() {
    printf '%-34s %-8s %5ss\n' "$1" "$2" "$3" >>"$SUMMARY"
}

# Runs one check, records its verdict and wall time; a failure is counted, the matrix goes on.
check() {
    local name="$1" started result=ok
    shift
    log "=== $name ==="
    started=$(date +%s)
    "$@" || result=FAILED
    record "$name" "$result" "$(( $(date +%s) - started ))"
    [ "$result" = ok ]
}

run_version() {
    local version="$1" venv="$ROOT/.venv-matrix/$1" python controller
    local -a sanity
    mapfile -t sanity < <(sanity_args)
    if ! python="$(controller_python "$version")"; then
        log "ansible-core $version needs a Python 3.12 or newer controller: none on PATH or under pyenv, skipped"
        record "ansible-core $version: no Python 3.12+" skipped 0
        return 0
    fi
    controller="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    check "ansible-core $version: venv" ensure_venv "$version" "$python" || return 1
    check "ansible-core $version: sanity ($controller)" env SANITY_VENV="$venv" SANITY_PYTHON="$controller" \
        "$ROOT/tools/sanity.sh" "${sanity[@]}" || true
    if [ "$controller" != 3.11 ]; then  # the modules' target stays Debian 12's 3.11
        check "ansible-core $version: compile, import (3.11)" env SANITY_VENV="$venv" SANITY_PYTHON=3.11 \
            "$ROOT/tools/sanity.sh" --test compile --test import || true
    fi
    check "ansible-core $version: unit" env PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" \
        "$venv/bin/pytest" -q -p no:cacheprovider -n "$MATRIX_JOBS" tests/unit || true
    # shellcheck disable=SC2086 # one test file a word
    check "ansible-core $version: modules" env PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" \
        "$venv/bin/pytest" -q -p no:cacheprovider $MATRIX_MODULE_TESTS || true
}

target_pythons() {
    local version found=()
    for version in $MATRIX_TARGET_PYTHONS; do
        if command -v "python$version" >/dev/null 2>&1 && "python$version" -c '' 2>/dev/null; then
            found+=(--python "$version")
        elif [ "$version" = "3.11" ]; then
            log "python3.11 (Debian 12's) is missing: it is the target every claim rests on" >&2
            return 1
        else
            record "target python $version" skipped 0
        fi
    done
    printf '%s\n' "${found[@]}"
}

run_target_pythons() {
    local -a pythons
    local python
    mapfile -t pythons < <(target_pythons)
    for python in "${pythons[@]}"; do
        [ "$python" = --python ] && continue
        [ "$python" = 3.11 ] && continue  # `make sanity` runs every test on 3.11
        check "target python $python: compile, import" \
            env SANITY_PYTHON="$python" "$ROOT/tools/sanity.sh" --test compile --test import || true
    done
}

main() {
    mkdir -p "$ROOT/build"
    : >"$SUMMARY"
    local version
    for version in $MATRIX_ANSIBLE_CORE; do
        run_version "$version" || true
    done
    record "ansible-core $("$ROOT/.venv/bin/python" -c 'from importlib.metadata import version; print(version("ansible-core"))'): .venv" "in every" 0
    run_target_pythons
    echo
    log "=== summary ==="
    cat "$SUMMARY"
    if grep -q ' FAILED ' "$SUMMARY"; then
        log "$(grep -c ' FAILED ' "$SUMMARY") matrix checks FAILED"
        exit 1
    fi
    log "every matrix check passed"
}

main "$@"
