#!/usr/bin/env bash
# The newcomer's path, proved (make fresh-check): the README's two commands, `make demo` then `make test`, on a
# clean clone of HEAD inside a fresh Debian 12 root that nothing was installed into by hand.
#
#   1. A minimal Debian 12 root (debootstrap --variant=minbase bookworm, from the mirror this machine's apt uses)
#      under build/fresh-check/root. The pristine root is kept as build/fresh-check/minbase.tar (nothing installed
#      in it yet), so the next run unpacks it instead of running debootstrap again (FRESH_CHECK_REBUILD=1: anew).
#   2. `git clone` of this repository at HEAD into it (committed work only: uncommitted changes are not seen).
#   3. /proc, /sys and /dev mounted into the root (dev bound), and taken down again whatever happens.
#   4. In the root, as a newcomer would: `apt-get install make` (the README's one prerequisite), `make demo`,
#      `make test`. The root shares this host's network, used only for the package registries (Debian's mirror,
#      PyPI); the tests themselves talk over 127.0.0.1. The CA certificates this host added to its own
#      (/usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's on the way to the registries) are copied
#      into the root, where ca-certificates takes them in when setup installs it, and pip there uses the system
#      bundle (/etc/pip.conf; pip's own bundle would not know them).
#   5. Checks after each command: the demo installed no server package; no process of the root is left running;
#      no systemd unit is enabled in the root (test dependencies are installed with no service started or
#      enabled); and at the end nothing stays mounted.
# Wall times: build/fresh-check/summary.txt (each command) and build/fresh-check/test-summary.txt (each step of
# `make test`, copied from the clone's build/test-summary.txt) and build/fresh-check/skipped-steps.txt (the steps
# left out), recorded in tools/results/fresh-check.json and
# rendered into the README (tools/render_measurements.py).
#
# Environment:
#   FRESH_CHECK_SKIP=molecule   `make test` steps left out inside the root (default: molecule; its podman
#                               containers do not nest in a chroot)
#   FRESH_CHECK_COMMANDS        what to run, ';'-separated (default: "make demo;make test")
#   FRESH_CHECK_KEEP=1          keep the root afterwards (for a look inside); it is removed otherwise
#   FRESH_CHECK_REBUILD=1       debootstrap anew instead of unpacking the kept pristine root
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/build/fresh-check"
ROOTFS="$WORK/root"
# Where others can reach it: some tests run the venv's tools as the user nobody (a 0700 /root would stop them).
PROJECT_IN_ROOT=/srv/reddit-backup
FRESH_CHECK_SKIP="${FRESH_CHECK_SKIP-molecule}"
FRESH_CHECK_COMMANDS="${FRESH_CHECK_COMMANDS:-make demo;make test}"
SUMMARY="$WORK/summary.txt"
# What the demo must not install: it starts no daemon on the user's machine.
SERVER_PACKAGES=(openssh-server prometheus)

log() { printf '[fresh-check] %s\n' "$*"; }
die() { printf '[fresh-check] %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"

mounts_under_root() {
    findmnt -rn -o TARGET | awk -v root="$ROOTFS" 'index($0, root "/") == 1' | sort -r
}

# Processes whose root directory is the fresh root: none may outlive a command.
processes_in_root() {
    local pid
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOTFS" ] && printf '%s %s\n' "${pid#/proc/}" "$(tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | cut -c1-120)"
    done
    return 0
}

stop_processes_in_root() {
    local pid
    for pid in $(processes_in_root | awk '{print $1}'); do
        kill "$pid" 2>/dev/null || true
    done
    sleep 1
    for pid in $(processes_in_root | awk '{print $1}'); do
        kill -9 "$pid" 2>/dev/null || true
    done
}

unmount_all() {
    local target
    stop_processes_in_root
    for target in $(mounts_under_root); do
        umount -l "$target" 2>/dev/null || true
    done
    [ -z "$(mounts_under_root)" ] || { mounts_under_root >&2; die "still mounted under $ROOTFS"; }
}

cleanup() {
    unmount_all
    if [ "${FRESH_CHECK_KEEP:-0}" != "1" ] && [ -d "$ROOTFS" ]; then
        rm -rf --one-file-system "$ROOTFS"
    fi
}

build_root() {
    local mirror started pristine="$WORK/minbase.tar"
    started=$(date +%s)
    if [ "${FRESH_CHECK_REBUILD:-0}" != "1" ] && [ -f "$pristine" ]; then
        log "unpacking the pristine minbase root ($pristine)"
        mkdir -p "$ROOTFS"
        tar -C "$ROOTFS" -xf "$pristine"
    else
        mirror="$(python3 "$ROOT/tools/debian_mirror.py")" || die "no Debian bookworm mirror in /etc/apt/sources.list*"
        log "debootstrap --variant=minbase bookworm from $mirror"
        debootstrap --variant=minbase bookworm "$ROOTFS" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
        tar -C "$ROOTFS" -cf "$pristine.tmp" . && mv "$pristine.tmp" "$pristine"
    fi
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        log "copied this host's own CA certificates into the root: $(cd /usr/local/share/ca-certificates && echo *.crt)"
        # pip's own bundle does not know them, and ansible-test drops PIP_CERT from its pip's environment: say it
        # in pip's configuration file, as this host does.
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOTFS/etc/pip.conf"
    fi
    record "fresh root" ok "$(( $(date +%s) - started ))"
}

clone_project() {
    local head
    head="$(git -C "$ROOT" rev-parse HEAD)"
    if [ -n "$(git -C "$ROOT" status --porcelain)" ]; then
        log "uncommitted changes in $ROOT are not part of the check (it clones HEAD $head)"
    fi
    git clone --quiet --no-hardlinks "$ROOT" "$ROOTFS$PROJECT_IN_ROOT"
    git -C "$ROOTFS$PROJECT_IN_ROOT" checkout --quiet --detach "$head"
    log "cloned HEAD $(git -C "$ROOT" log --oneline -1)"
}

mount_filesystems() {
    mount -t proc proc "$ROOTFS/proc"
    mount -t sysfs sysfs "$ROOTFS/sys"
    mount --rbind /dev "$ROOTFS/dev"
    mount --make-rslave "$ROOTFS/dev"
}

in_root() {
    chroot "$ROOTFS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb NO_COLOR=1 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PIP_DEFAULT_TIMEOUT=180 \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
        /bin/bash -c "$1"
}

record() {
    printf '%-24s %-7s %5ss\n' "$1" "$2" "$3" >>"$SUMMARY"
}

# The units enabled in the root, read from its files (no systemd runs there).
enabled_units() {
    if [ -x "$ROOTFS/usr/bin/systemctl" ]; then
        # systemctl exits 1 when no unit matches: an empty list.
        { systemctl --root="$ROOTFS" list-unit-files --state=enabled --no-legend --no-pager 2>/dev/null || true; } \
            | awk '{print $1}' | sort
    fi
}

check_after() {
    local command="$1" problems=0 package left enabled
    left="$(processes_in_root)"
    if [ -n "$left" ]; then
        log "FAILED: '$command' left processes running in the root:"; printf '%s\n' "$left"
        problems=1
        stop_processes_in_root
    fi
    enabled="$(comm -13 <(printf '%s\n' "$UNITS_BEFORE") <(enabled_units) | sed '/^$/d')"
    if [ -n "$enabled" ]; then
        log "FAILED: '$command' left units enabled:"; printf '%s\n' "$enabled"
        problems=1
    fi
    if [ "$command" = "make demo" ]; then
        installed="$(python3 "$ROOT/tools/packages.py" --installed "$ROOTFS/var/lib/dpkg/status" "${SERVER_PACKAGES[@]}")"
        if [ -n "$installed" ]; then
            log "FAILED: make demo installed: $(echo $installed)"
            problems=1
        fi
    fi
    return "$problems"
}

run_command() {
    local command="$1" started result=ok steps
    if [ "$command" = "make test" ] && [ -n "$FRESH_CHECK_SKIP" ]; then
        steps="$(in_root "cd $PROJECT_IN_ROOT && make -s print-test-steps")"
        for skipped in $FRESH_CHECK_SKIP; do steps="$(printf '%s\n' $steps | grep -vx "$skipped" | tr '\n' ' ')"; done
        log "make test without: $FRESH_CHECK_SKIP"
        command="make test TEST_STEPS='${steps% }'"
    fi
    log "=== $command ==="
    started=$(date +%s)
    in_root "cd $PROJECT_IN_ROOT && $command" 2>&1 | tee "$WORK/$(echo "${1// /-}").log" || result=FAILED
    check_after "$1" || result=FAILED
    record "$1" "$result" "$(( $(date +%s) - started ))"
    [ "$result" = ok ]
}

main() {
    mkdir -p "$WORK"
    : >"$SUMMARY"
    rm -f "$WORK/test-summary.txt"
    # What the recorder says was left out (it reads files, not this shell's variables).
    printf '%s\n' $FRESH_CHECK_SKIP >"$WORK/skipped-steps.txt"
    trap cleanup EXIT
    if [ -d "$ROOTFS" ]; then unmount_all; rm -rf --one-file-system "$ROOTFS"; fi
    build_root
    clone_project
    mount_filesystems
    local started failed=0 command
    started=$(date +%s)
    log "the README's prerequisite: apt-get install make"
    in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make" \
        >"$WORK/make-install.log" 2>&1 || { tail -20 "$WORK/make-install.log"; die "could not install make"; }
    record "apt-get install make" ok "$(( $(date +%s) - started ))"
    UNITS_BEFORE="$(enabled_units)"
    IFS=';' read -r -a commands <<<"$FRESH_CHECK_COMMANDS"
    for command in "${commands[@]}"; do
        run_command "$command" || failed=$((failed + 1))
    done
    if [ -f "$ROOTFS$PROJECT_IN_ROOT/build/test-summary.txt" ]; then
        cp "$ROOTFS$PROJECT_IN_ROOT/build/test-summary.txt" "$WORK/test-summary.txt"
    fi
    cleanup
    trap - EXIT
    echo
    log "=== summary (wall time of each command in the fresh root) ==="
    cat "$SUMMARY"
    if [ -f "$WORK/test-summary.txt" ]; then
        log "=== make test steps in the fresh root ==="
        cat "$WORK/test-summary.txt"
    fi
    # The README's newcomer table shows these figures (tools/results/fresh-check.json).
    python3 "$ROOT/tools/render_measurements.py" --record-fresh-check "$WORK"
    [ "$failed" -eq 0 ] || die "$failed of ${#commands[@]} commands FAILED in the fresh root"
    log "the README's commands passed on a fresh Debian 12 root${FRESH_CHECK_SKIP:+ (make test without $FRESH_CHECK_SKIP)}"
}

main "$@"
