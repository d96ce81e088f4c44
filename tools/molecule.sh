#!/usr/bin/env bash
# The molecule recovery tests on real systemd hosts (make molecule): sets up everything they need, then runs them.
#
# Idempotent: every step checks first and does nothing when its result is already there, so a second run goes
# straight to the scenarios. From a fresh Debian 12 machine (root, PyPI and the Debian mirror reachable, no
# container registry) to green without a hand step:
#   1. Debian packages: podman, runc, debootstrap, uidmap, containernetworking-plugins (tools/packages.txt).
#   2. /etc/containers/containers.conf: the two settings podman needs here :
#      runc instead of crun, container ulimits the host allows, and no network by default.
#   3. The host image, Debian 12 with systemd as PID 1, built with debootstrap from the Debian mirror this machine
#      uses (no registry is reachable); cached: its tag is a hash of the recipe, so it is rebuilt only when the
#      recipe changes. Containers have no network, so everything the playbooks need inside is in the image.
#   4. molecule and its podman driver in the project venv (.venv), if missing.
#   5. The containers.podman collection (the podman connection plugin and the driver's modules), unpacked from
#      the `ansible` package on PyPI into build/molecule/collections (no Galaxy server is reachable).
#   6. Wheelhouses: ansible-core for the containers (the runner role installs its venv from it, offline), and the
#      sample app's requirements (the disaster recovery rebuilds the app's venv from them, offline).
#   7. The collection tarball, built once per run (the runner role installs it on the hosts), and installed
#      from it with ansible-galaxy into build/molecule/installed-collections (the default scenario's collection).
# Then `molecule test` for each scenario, in order, with its wall time; a summary at the end, recorded in
# molecule/results/measured.json and rendered into the READMEs (tools/render_measurements.py).
#
# Usage:
#   tools/molecule.sh                       set up, then test every scenario (MOLECULE_SCENARIOS)
#   tools/molecule.sh default recovery      set up, then test these scenarios
#   tools/molecule.sh --setup               set up only
#   tools/molecule.sh -- converge -s default   set up, then run molecule with these arguments (paths and
#                                              environment as for the tests; for working on a scenario)
# Environment:
#   MOLECULE_SCENARIOS   the scenarios `tools/molecule.sh` tests, in order
#   MOLECULE_REBUILD=1   rebuild the image even when it exists
#   SETUP_SKIP_APT=1     do not touch Debian packages or /etc/containers (someone else manages them)
#   MOLECULE_HOST_SUFFIX the end of the container names (default: a hash of this checkout's path)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
WORK="$ROOT/build/molecule"
MOLECULE_SCENARIOS="${MOLECULE_SCENARIOS:-default recovery pre_maintenance disaster_recovery drill_host}"

# Pins: molecule and its driver (they pull in only enrich beside what .venv has), and the `ansible` release
# whose containers.podman we unpack (ansible 12 is the package of ansible-core 2.19, the one in .venv).
MOLECULE_REQUIREMENTS=("molecule==26.10.0" "molecule-plugins[podman]==26.10.12")
ANSIBLE_PACKAGE_VERSION="12.3.0"
# Collections unpacked from that package: only what the podman driver and connection need.
BUNDLED_COLLECTIONS=(containers/podman)

# The image's packages: tools/packages.txt (step molecule-image; the host's are step molecule) is the one list.
# Containers have no network: whatever a playbook or role needs inside must be in the image.
mapfile -t IMAGE_PACKAGES < <(python3 "$ROOT/tools/programs.py" --only molecule-image)
[ "${#IMAGE_PACKAGES[@]}" -gt 0 ] || { echo "[molecule] no molecule-image packages in tools/packages.txt" >&2; exit 1; }
# Bump when the recipe below changes in a way the package list does not show.
IMAGE_RECIPE_REVISION=2
IMAGE_NAME="localhost/reddit-backup-debian12"
IMAGE_BUILD_SECONDS=""

log() { printf '[molecule] %s\n' "$*"; }
die() { printf '[molecule] %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# --- 1. Debian packages -------------------------------------------------------------------------------------

# tools/setup.sh installs them the harness's way: no service started or left enabled by the install.
ensure_host_packages() {
    [ "${SETUP_SKIP_APT:-0}" = "1" ] && return 0
    SETUP_SKIP_VENV=1 "$ROOT/tools/setup.sh" molecule
}

# --- 2. /etc/containers/containers.conf -----------------------------------------------------------------------

# Sets the three keys in their tables and leaves every other line of the file as it is. Prints "changed" when
# it wrote the file. Without them podman fails here with `crun: setrlimit RLIMIT_NOFILE: Operation not
# permitted`, then `crun: cgroups in hybrid mode not supported`; netns = "none" keeps any container that does
# not say otherwise off podman's default bridge (10.88.x), which these tests must never use.
ensure_containers_conf() {
    [ "${SETUP_SKIP_APT:-0}" = "1" ] && return 0
    local result
    result="$(as_root python3 - /etc/containers/containers.conf <<'PY'
import os, re, sys

path = sys.argv[1]
wanted = {
    "containers": [("default_ulimits", '["nofile=16384:16384", "nproc=32768:32768"]'), ("netns", '"none"')],
    "engine": [("runtime", '"runc"')],
}
try:
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
except FileNotFoundError:
    lines = []
original = list(lines)

def table_bounds(name):
    start = None
    for index, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header and start is not None:
            return start, index
        if header and header.group(1).strip() == name:
            start = index
    return (start, len(lines)) if start is not None else (None, None)

for table, keys in wanted.items():
    start, end = table_bounds(table)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append("[%s]" % table)
        start, end = len(lines) - 1, len(lines)
    for key, value in keys:
        setting = "%s = %s" % (key, value)
        start, end = table_bounds(table)
        for index in range(start + 1, end):
            if re.match(r"^\s*%s\s*=" % re.escape(key), lines[index]):
                lines[index] = setting
                break
        else:
            lines.insert(start + 1, setting)

if lines != original:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = path + ".molecule-tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temp, 0o644)
    os.replace(temp, path)
    print("changed")
PY
)"
    [ "$result" = "changed" ] && log "wrote the podman settings into /etc/containers/containers.conf"
    return 0
}

# --- 3. The Debian 12 systemd image ---------------------------------------------------------------------------

# The Debian mirror this machine's apt uses for bookworm (deb822 `URIs:` or one-line `deb URL bookworm ...`).
debian_mirror() {
    python3 "$ROOT/tools/debian_mirror.py"
}

image_tag() {
    printf '%s\n' "$IMAGE_RECIPE_REVISION" "${IMAGE_PACKAGES[@]}" | sha256sum | cut -c1-12
}

ensure_image() {
    local image="$IMAGE_NAME:$(image_tag)"
    export MOLECULE_HOST_IMAGE="$image"
    if [ "${MOLECULE_REBUILD:-0}" != "1" ] && podman image exists "$image"; then
        # :latest is what a scenario falls back to when molecule runs without this script.
        podman tag "$image" "$IMAGE_NAME:latest"
        return 0
    fi
    local mirror rootfs started packages
    mirror="$(debian_mirror)" || die "no Debian bookworm mirror found in /etc/apt/sources.list*"
    rootfs="$WORK/rootfs"
    started=$(date +%s)
    log "building $image with debootstrap from $mirror (about 2 minutes)"
    as_root rm -rf "$rootfs"
    mkdir -p "$WORK"
    packages="$(IFS=,; echo "${IMAGE_PACKAGES[*]}")"
    as_root debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    # Each container gets its own machine id and ssh host keys at boot, not the build's; sshd runs only where a
    # scenario starts it (the backup server), so hosts that share one network namespace never fight over port 22.
    as_root chroot "$rootfs" /bin/sh -eu -c '
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /etc/ssh/ssh_host_*
        systemctl disable ssh.service >/dev/null 2>&1 || true
        # No getty in a container; no apt timers on a host without a network.
        systemctl mask getty.target console-getty.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
        : > /etc/machine-id
        rm -f /var/lib/dbus/machine-id
    '
    as_root tar -C "$rootfs" -c . | podman import --quiet \
        --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' - "$image" >/dev/null
    as_root rm -rf "$rootfs"
    podman tag "$image" "$IMAGE_NAME:latest"
    # Images of earlier recipes are of no use any more.
    podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$IMAGE_NAME:" \
        | grep -v -e ":$(image_tag)\$" -e ':latest$' | xargs -r podman rmi >/dev/null || true
    IMAGE_BUILD_SECONDS=$(( $(date +%s) - started ))
    log "built $image in ${IMAGE_BUILD_SECONDS}s ($(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec))"
}

# --- 4. molecule in the venv ----------------------------------------------------------------------------------

ensure_molecule() {
    [ -x "$VENV/bin/python" ] || die "no venv at $VENV: run tools/setup.sh (make setup) first"
    if "$VENV/bin/python" - "${MOLECULE_REQUIREMENTS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for requirement in sys.argv[1:]:
    name, pinned = requirement.split("==")
    try:
        if version(name.split("[")[0]) != pinned:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
    then
        return 0
    fi
    log "installing ${MOLECULE_REQUIREMENTS[*]} into .venv"
    # The lock keeps every package .venv already has at its pin (ansible-core above all).
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${MOLECULE_REQUIREMENTS[@]}" -c "$ROOT/requirements-lock.txt" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
}

# --- 5. containers.podman from the ansible package ------------------------------------------------------------

ensure_bundled_collections() {
    local collections="$WORK/collections" stamp="$WORK/collections/.ansible-$ANSIBLE_PACKAGE_VERSION"
    [ -f "$stamp" ] && return 0
    local downloads="$WORK/downloads"
    mkdir -p "$downloads"
    if ! ls "$downloads"/ansible-"$ANSIBLE_PACKAGE_VERSION"-*.whl >/dev/null 2>&1 \
        && ! ls "$downloads"/ansible-"$ANSIBLE_PACKAGE_VERSION".tar.gz >/dev/null 2>&1; then
        log "downloading ansible==$ANSIBLE_PACKAGE_VERSION (only to unpack ${BUNDLED_COLLECTIONS[*]} from it)"
        "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            "ansible==$ANSIBLE_PACKAGE_VERSION" -d "$downloads" \
            2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
    fi
    rm -rf "$collections"
    mkdir -p "$collections"
    "$VENV/bin/python" - "$downloads" "$ANSIBLE_PACKAGE_VERSION" "$collections" "${BUNDLED_COLLECTIONS[@]}" <<'PY'
import glob, os, sys, tarfile, zipfile

downloads, version, dest, *wanted = sys.argv[1:]
prefixes = ["ansible_collections/%s/" % name for name in wanted]
found = set()

def target(name):
    # wheel: ansible_collections/...; sdist: ansible-<version>/ansible_collections/...
    relative = name.split("/", 1)[1] if name.startswith("ansible-%s/" % version) else name
    for prefix in prefixes:
        if relative.startswith(prefix) and ".." not in relative.split("/"):
            found.add(prefix)
            return os.path.join(dest, relative)
    return None

wheels = glob.glob(os.path.join(downloads, "ansible-%s-*.whl" % version))
if wheels:
    with zipfile.ZipFile(wheels[0]) as archive:
        for info in archive.infolist():
            path = target(info.filename)
            if path and not info.is_dir():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with archive.open(info) as src, open(path, "wb") as out:
                    out.write(src.read())
else:
    with tarfile.open(os.path.join(downloads, "ansible-%s.tar.gz" % version)) as archive:
        for member in archive:
            path = target(member.name)
            if path and member.isfile():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with archive.extractfile(member) as src, open(path, "wb") as out:
                    out.write(src.read())
missing = [p for p in prefixes if p not in found]
if missing:
    sys.exit("not in ansible %s: %s" % (version, ", ".join(missing)))
PY
    touch "$stamp"
    log "unpacked ${BUNDLED_COLLECTIONS[*]} from ansible $ANSIBLE_PACKAGE_VERSION into ${collections#"$ROOT"/}"
}

# --- 6. The wheelhouse the runner role installs from inside the containers ------------------------------------

ensure_wheelhouse() {
    local wheelhouse="$WORK/wheelhouse" core_version
    core_version="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("ansible-core"))')"
    [ -f "$wheelhouse/.ansible-core-$core_version" ] && return 0
    log "collecting wheels of ansible-core $core_version for the containers (Debian 12, Python 3.11)"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_34_x86_64 --platform linux_x86_64 --platform any \
        "ansible-core==$core_version" -d "$wheelhouse" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
    touch "$wheelhouse/.ansible-core-$core_version"
}

# The sample app's requirements as wheels: the old server's full backup carries them, and the disaster_recovery
# playbook rebuilds the app's venv from them on the new server, which has no package index.
ensure_app_wheelhouse() {
    local wheelhouse="$WORK/app-wheelhouse" requirements stamp
    requirements="$ROOT/examples/sample_app/skeleton/apps/collector/requirements.txt"
    stamp="$wheelhouse/.requirements-$(sha256sum "$requirements" | cut -c1-12)"
    [ -f "$stamp" ] && return 0
    log "collecting wheels of the sample app's requirements (the disaster recovery rebuilds its venv offline)"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform linux_x86_64 --platform any \
        -r "$requirements" -d "$wheelhouse" \
        2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" >&2)
    touch "$stamp"
}

# --- 7. The collection, built once for the whole run ------------------------------------------------------------

# The runner role installs this tarball on the hosts: one build per run, so converge and idempotence install the
# same bytes (and an edit in the tree during a run does not count as a change of the host).
build_collection() {
    local dist="$WORK/dist"
    rm -rf "$dist"
    mkdir -p "$dist"
    "$VENV/bin/ansible-galaxy" collection build --force --output-path "$dist" \
        "$ROOT/collections/ansible_collections/devops/reddit_backup" >/dev/null
    MOLECULE_COLLECTION_TARBALL="$(ls "$dist"/devops-reddit_backup-*.tar.gz)"
    export MOLECULE_COLLECTION_TARBALL
    install_collection
}

# The default scenario runs the collection as an operator has it: this tarball installed with ansible-galaxy
# into a scratch collections path (no galaxy.yml there, so the runner role ships the installed collection).
install_collection() {
    local installed="$WORK/installed-collections"
    rm -rf "$installed"
    mkdir -p "$installed"
    ANSIBLE_COLLECTIONS_PATH="$installed" "$VENV/bin/ansible-galaxy" collection install \
        -p "$installed" "$MOLECULE_COLLECTION_TARBALL" >/dev/null
}

# --- the scenarios --------------------------------------------------------------------------------------------

molecule_environment() {
    export PATH="$VENV/bin:$PATH"
    export VIRTUAL_ENV="$VENV"
    export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
    # Molecule (its ephemeral folders live under $XDG_CACHE_HOME/molecule) and Ansible write under these, not ~.
    export ANSIBLE_HOME="$WORK/ansible-home"
    export ANSIBLE_LOCAL_TEMP="$WORK/ansible-home/tmp"
    export XDG_CACHE_HOME="$WORK/cache"
    # This tree's collection first, then containers.podman.
    export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$WORK/collections"
    export MOLECULE_WHEELHOUSE="$WORK/wheelhouse"
    export MOLECULE_APP_WHEELHOUSE="$WORK/app-wheelhouse"
    build_collection
    export MOLECULE_RESULTS_DIR="$WORK/results"
    # Container names end in a short hash of this checkout, so two checkouts on one machine (a CI clone beside a
    # work tree) never touch each other's hosts.
    MOLECULE_HOST_SUFFIX="${MOLECULE_HOST_SUFFIX:-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)}"
    export MOLECULE_HOST_SUFFIX
    export NO_COLOR="${NO_COLOR:-1}"
    export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
    mkdir -p "$ANSIBLE_LOCAL_TEMP" "$MOLECULE_RESULTS_DIR"
}

run_scenarios() {
    local summary="$MOLECULE_RESULTS_DIR/summary.txt" failed=0 scenario started result
    rm -f "$MOLECULE_RESULTS_DIR"/*.txt
    : >"$summary"
    for scenario in "$@"; do
        [ -f "$ROOT/molecule/$scenario/molecule.yml" ] || die "no scenario molecule/$scenario"
        echo
        log "=== molecule test -s $scenario ==="
        started=$(date +%s)
        if molecule test -s "$scenario"; then result=ok; else result=FAILED; failed=$((failed + 1)); fi
        printf '%-18s %-7s %5ss\n' "$scenario" "$result" "$(( $(date +%s) - started ))" >>"$summary"
    done
    echo
    log "=== summary (wall time per scenario) ==="
    if [ -n "$IMAGE_BUILD_SECONDS" ]; then
        printf '%-18s %-7s %5ss\n' "image build" ok "$IMAGE_BUILD_SECONDS"
    else
        printf '%-18s %s\n' "image build" "cached ($MOLECULE_HOST_IMAGE)"
    fi
    cat "$summary"
    if ls "$MOLECULE_RESULTS_DIR"/*.recovery-times.txt >/dev/null 2>&1; then
        log "=== recovery times measured (RTO from detection to healthy, against the guide's targets) ==="
        cat "$MOLECULE_RESULTS_DIR"/*.recovery-times.txt
    fi
    # The READMEs show these figures: the scenarios that passed replace theirs in molecule/results/measured.json.
    python3 "$ROOT/tools/render_measurements.py" --record-molecule "$MOLECULE_RESULTS_DIR" \
        --image-build-seconds "$IMAGE_BUILD_SECONDS"
    [ "$failed" -eq 0 ] || die "$failed of $# scenarios FAILED"
    log "all $# scenarios passed"
}

setup() {
    ensure_host_packages
    ensure_containers_conf
    ensure_molecule
    ensure_bundled_collections
    ensure_wheelhouse
    ensure_app_wheelhouse
    ensure_image
}

main() {
    case "${1:-}" in
        --setup)
            setup
            log "set up; image $MOLECULE_HOST_IMAGE"
            ;;
        --)
            shift
            setup
            molecule_environment
            exec molecule "$@"
            ;;
        -h|--help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            ;;
        *)
            setup
            molecule_environment
            # shellcheck disable=SC2086 # the default list is one scenario a word
            if [ "$#" -eq 0 ]; then set -- $MOLECULE_SCENARIOS; fi
            run_scenarios "$@"
            ;;
    esac
}

main "$@"
