#!/usr/bin/env python3
"""The molecule recovery tests on real systemd hosts (make molecule): sets up everything they need, then runs them.

Idempotent: every step checks first and does nothing when its result is already there, so a second run goes
straight to the scenarios. From a fresh Debian 12 machine (root, PyPI and the Debian mirror reachable, no
container registry) to green without a hand step:
  1. Debian packages: podman, runc, debootstrap, uidmap, containernetworking-plugins (tools/packages.txt, step
     molecule, installed by tools/packages.py: no service started or left enabled by the install).
  2. /etc/containers/containers.conf: the settings podman needs here: runc instead of crun, container ulimits
     the host allows, and no network by default.
  3. The host image, Debian 12 with systemd as PID 1, built with debootstrap from the Debian mirror this machine
     uses (no registry is reachable); cached: its tag is a hash of the recipe, so it is rebuilt only when the
     recipe changes. Containers have no network, so everything the playbooks need inside is in the image.
  4. molecule and its podman driver in the project venv (.venv), if missing.
  5. The containers.podman collection (the podman connection plugin and the driver's modules), unpacked from
     the `ansible` package on PyPI into build/molecule/collections (no Galaxy server is reachable).
  6. Wheelhouses: ansible-core for the containers (the runner role installs its venv from it, offline), and the
     sample app's requirements (the disaster recovery rebuilds the app's venv from them, offline).
  7. The collection tarball, built once per run (the runner role installs it on the hosts), and installed
     from it with ansible-galaxy into build/molecule/installed-collections (the default scenario's collection).
Then `molecule test` for each scenario, MOLECULE_JOBS at a time (each one's output printed whole when it ends),
with its wall time; a summary at the end, recorded in molecule/results/measured.json and rendered into the
READMEs (tools/render_measurements.py).

Usage:
  tools/molecule.py                       set up, then test every scenario (MOLECULE_SCENARIOS)
  tools/molecule.py default recovery      set up, then test these scenarios
  tools/molecule.py --setup               set up only
  tools/molecule.py -- converge -s default   set up, then run molecule with these arguments (paths and
                                             environment as for the tests; for working on a scenario)
Environment:
  MOLECULE_SCENARIOS   the scenarios `tools/molecule.py` tests, in order
  MOLECULE_JOBS        how many scenarios run at once (default 2; 1 streams each scenario's output live)
  MOLECULE_REBUILD=1   rebuild the image even when it exists
  SETUP_SKIP_APT=1     do not touch Debian packages or /etc/containers (someone else manages them)
  MOLECULE_HOST_SUFFIX the end of the container names (default: a hash of this checkout's path)
"""

from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from debian_mirror import find_mirror  # noqa: E402  (tools/ is no package)
from packages import PackageError, as_root, ensure_packages, own_packages  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
WORK = ROOT / "build" / "molecule"
# Longest first: with MOLECULE_JOBS at a time, the short ones fill in at the end.
DEFAULT_SCENARIOS = "replication recovery default fleet drill_host disaster_recovery pre_maintenance"

# Pins: molecule and its driver (they pull in only enrich beside what .venv has), and the `ansible` release
# whose containers.podman we unpack (ansible 12 is the package of ansible-core 2.19, the one in .venv).
MOLECULE_REQUIREMENTS = ["molecule==26.10.0", "molecule-plugins[podman]==26.10.12"]
ANSIBLE_PACKAGE_VERSION = "12.3.0"
# Collections unpacked from that package: only what the podman driver and connection need.
BUNDLED_COLLECTIONS = ["containers/podman"]

# Bump when the image recipe below changes in a way the package list does not show.
IMAGE_RECIPE_REVISION = 2
IMAGE_NAME = "localhost/reddit-backup-debian12"
# Each container gets its own machine id and ssh host keys at boot, not the build's; sshd runs only where a
# scenario starts it (the backup server), so hosts that share one network namespace never fight over port 22.
IMAGE_ROOT_CLEANUP = """
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /etc/ssh/ssh_host_*
    systemctl disable ssh.service >/dev/null 2>&1 || true
    # No getty in a container; no apt timers on a host without a network.
    systemctl mask getty.target console-getty.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
    : > /etc/machine-id
    rm -f /var/lib/dbus/machine-id
"""

CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# Without these podman fails here with `crun: setrlimit RLIMIT_NOFILE: Operation not permitted`, then `crun:
# cgroups in hybrid mode not supported`; netns = "none" keeps any container that does not say otherwise off
# podman's default bridge (10.88.x), which these tests must never use.
CONTAINERS_SETTINGS = {
    "containers": [("default_ulimits", '["nofile=16384:16384", "nproc=32768:32768"]'), ("netns", '"none"')],
    "engine": [("runtime", '"runc"')],
}
# Wheels for the containers' Python (Debian 12: CPython 3.11 on x86_64).
CONTAINER_PLATFORM = ["--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                      "--platform", "manylinux_2_28_x86_64", "--platform", "linux_x86_64", "--platform", "any"]
# This machine's pip configuration names extra local indexes that may not exist: drop pip's warnings on them.
PIP_NOISE = re.compile(r"^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory")


PRINTING = threading.Lock()


class MoleculeError(Exception):
    """A setup step or a scenario that failed; the message says which and where its log is."""


def log(message: str) -> None:
    print("[molecule] %s" % message, flush=True)


def run_as_root(argv: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(as_root(argv), check=kwargs.pop("check", True), **kwargs)


def pip(*arguments: str) -> None:
    completed = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", *arguments, "--quiet",
                                "--disable-pip-version-check"], stderr=subprocess.PIPE, text=True, check=False)
    noise = "".join(line for line in completed.stderr.splitlines(True) if not PIP_NOISE.match(line))
    sys.stderr.write(noise)
    if completed.returncode != 0:
        raise MoleculeError("pip %s exited %d" % (arguments[0], completed.returncode))


def short_hash(data: bytes, length: int) -> str:
    return hashlib.sha256(data).hexdigest()[:length]


# --- 2. /etc/containers/containers.conf -----------------------------------------------------------------------

def with_settings(lines: list, wanted: dict = CONTAINERS_SETTINGS) -> list:
    """LINES with each key set in its table; every other line stays as it is."""
    lines = list(lines)

    def table_bounds(name: str) -> tuple:
        start = None
        for index, line in enumerate(lines):
            header = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
            if header and start is not None:
                return start, index
            if header and header.group(1).strip() == name:
                start = index
        return (start, len(lines)) if start is not None else (None, None)

    for table, keys in wanted.items():
        if table_bounds(table)[0] is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines.append("[%s]" % table)
        for key, value in keys:
            start, end = table_bounds(table)
            setting = "%s = %s" % (key, value)
            for index in range(start + 1, end):
                if re.match(r"^\s*%s\s*=" % re.escape(key), lines[index]):
                    lines[index] = setting
                    break
            else:
                lines.insert(start + 1, setting)
    return lines


def ensure_containers_conf() -> None:
    try:
        lines = CONTAINERS_CONF.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    wanted = with_settings(lines)
    if wanted == lines:
        return
    staged = WORK / "containers.conf"
    WORK.mkdir(parents=True, exist_ok=True)
    staged.write_text("\n".join(wanted) + "\n", encoding="utf-8")
    temp = "%s.molecule-tmp" % CONTAINERS_CONF
    run_as_root(["install", "-D", "-m", "0644", str(staged), temp])
    run_as_root(["mv", "-f", temp, str(CONTAINERS_CONF)])
    staged.unlink()
    log("wrote the podman settings into %s" % CONTAINERS_CONF)


# --- 3. The Debian 12 systemd image ---------------------------------------------------------------------------

def image_packages() -> list:
    # tools/packages.txt (step molecule-image; the host's are step molecule) is the one list.
    packages = own_packages("molecule-image")
    if not packages:
        raise MoleculeError("no molecule-image packages in tools/packages.txt")
    return packages


def image_tag(packages: list) -> str:
    recipe = "\n".join([str(IMAGE_RECIPE_REVISION)] + packages) + "\n"
    return short_hash(recipe.encode(), 12)


def podman(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *arguments], check=kwargs.pop("check", True), **kwargs)


def ensure_image() -> tuple:
    """(image, seconds it took to build, or None when it was cached)."""
    packages = image_packages()
    tag = image_tag(packages)
    image = "%s:%s" % (IMAGE_NAME, tag)
    cached = podman("image", "exists", image, check=False).returncode == 0
    if os.environ.get("MOLECULE_REBUILD", "0") != "1" and cached:
        # :latest is what a scenario falls back to when molecule runs without this program.
        podman("tag", image, IMAGE_NAME + ":latest")
        return image, None
    mirror = find_mirror()
    if not mirror:
        raise MoleculeError("no Debian bookworm mirror found in /etc/apt/sources.list*")
    started = time.monotonic()
    log("building %s with debootstrap from %s (about 2 minutes)" % (image, mirror))
    rootfs = WORK / "rootfs"
    run_as_root(["rm", "-rf", str(rootfs)])
    WORK.mkdir(parents=True, exist_ok=True)
    debootstrap_log = WORK / "debootstrap.log"
    with open(debootstrap_log, "w", encoding="utf-8") as output:
        built = run_as_root(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages), "bookworm",
                             str(rootfs), mirror], stdout=output, stderr=subprocess.STDOUT, check=False)
    if built.returncode != 0:
        sys.stderr.write("".join(debootstrap_log.read_text(encoding="utf-8").splitlines(True)[-20:]))
        raise MoleculeError("debootstrap failed (log: %s)" % debootstrap_log)
    run_as_root(["chroot", str(rootfs), "/bin/sh", "-eu", "-c", IMAGE_ROOT_CLEANUP])
    packed = subprocess.Popen(as_root(["tar", "-C", str(rootfs), "-c", "."]), stdout=subprocess.PIPE)
    podman("import", "--quiet", "--change", 'CMD ["/sbin/init"]', "--change", "STOPSIGNAL=SIGRTMIN+3", "-", image,
           stdin=packed.stdout, stdout=subprocess.DEVNULL)
    packed.stdout.close()
    if packed.wait() != 0:
        raise MoleculeError("tar of %s exited %d" % (rootfs, packed.returncode))
    run_as_root(["rm", "-rf", str(rootfs)])
    podman("tag", image, IMAGE_NAME + ":latest")
    remove_older_images(tag)
    seconds = int(time.monotonic() - started)
    size = podman("image", "inspect", "--format", "{{.Size}}", image, capture_output=True, text=True).stdout
    log("built %s in %ss (%d MiB)" % (image, seconds, int(size.strip() or 0) // 2**20))
    return image, seconds


def remove_older_images(tag: str) -> None:
    """Images of earlier recipes are of no use any more."""
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", capture_output=True, text=True).stdout
    older = [name for name in listed.split() if name.startswith(IMAGE_NAME + ":")
             and not name.endswith((":" + tag, ":latest"))]
    if older:
        podman("rmi", *older, check=False, stdout=subprocess.DEVNULL)


# --- 4. molecule in the venv ----------------------------------------------------------------------------------

def molecule_installed() -> bool:
    check = ("import sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
             "for requirement in sys.argv[1:]:\n"
             "    name, pinned = requirement.split('==')\n"
             "    try:\n"
             "        if version(name.split('[')[0]) != pinned:\n"
             "            sys.exit(1)\n"
             "    except PackageNotFoundError:\n"
             "        sys.exit(1)\n")
    return subprocess.run([str(VENV / "bin" / "python"), "-c", check, *MOLECULE_REQUIREMENTS],
                          check=False).returncode == 0


def ensure_molecule() -> None:
    if not os.access(VENV / "bin" / "python", os.X_OK):
        raise MoleculeError("no venv at %s: run tools/setup.sh (make setup) first" % VENV)
    if molecule_installed():
        return
    log("installing %s into .venv" % " ".join(MOLECULE_REQUIREMENTS))
    # The lock keeps every package .venv already has at its pin (ansible-core above all).
    pip("install", *MOLECULE_REQUIREMENTS, "-c", str(ROOT / "requirements-lock.txt"))


# --- 5. containers.podman from the ansible package ------------------------------------------------------------

def bundled_member(name: str, dest: Path, bundled: list = BUNDLED_COLLECTIONS) -> Path | None:
    """Where NAME of the ansible package goes under DEST, or None when it is not a file of a BUNDLED collection."""
    # wheel: ansible_collections/...; sdist: ansible-<version>/ansible_collections/...
    sdist_prefix = "ansible-%s/" % ANSIBLE_PACKAGE_VERSION
    relative = name[len(sdist_prefix):] if name.startswith(sdist_prefix) else name
    for collection in bundled:
        if relative.startswith("ansible_collections/%s/" % collection) and ".." not in relative.split("/"):
            return dest / relative
    return None


def unpack_bundled(downloads: Path, dest: Path, bundled: list = BUNDLED_COLLECTIONS) -> None:
    wheels = glob.glob(str(downloads / ("ansible-%s-*.whl" % ANSIBLE_PACKAGE_VERSION)))
    written: list = []
    if wheels:
        with zipfile.ZipFile(wheels[0]) as archive:
            for info in archive.infolist():
                path = bundled_member(info.filename, dest, bundled)
                if path and not info.is_dir():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(archive.read(info))
                    written.append(info.filename)
    else:
        with tarfile.open(downloads / ("ansible-%s.tar.gz" % ANSIBLE_PACKAGE_VERSION)) as archive:
            for member in archive:
                path = bundled_member(member.name, dest, bundled)
                if path and member.isfile():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(archive.extractfile(member).read())
                    written.append(member.name)
    missing = [name for name in bundled
               if not any("ansible_collections/%s/" % name in member for member in written)]
    if missing:
        raise MoleculeError("not in ansible %s: %s" % (ANSIBLE_PACKAGE_VERSION, ", ".join(missing)))


def download_ansible_package(wanted: list) -> Path:
    """The folder that holds the pinned ansible package (downloaded once, only to unpack WANTED from it)."""
    downloads = WORK / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    if not (glob.glob(str(downloads / ("ansible-%s-*.whl" % ANSIBLE_PACKAGE_VERSION)))
            or (downloads / ("ansible-%s.tar.gz" % ANSIBLE_PACKAGE_VERSION)).exists()):
        log("downloading ansible==%s (only to unpack %s from it)" % (ANSIBLE_PACKAGE_VERSION, " ".join(wanted)))
        pip("download", "--no-deps", "ansible==" + ANSIBLE_PACKAGE_VERSION, "-d", str(downloads))
    return downloads


def ensure_bundled_collections() -> None:
    collections = WORK / "collections"
    stamp = collections / (".ansible-%s" % ANSIBLE_PACKAGE_VERSION)
    if stamp.is_file():
        return
    downloads = download_ansible_package(BUNDLED_COLLECTIONS)
    shutil.rmtree(collections, ignore_errors=True)
    collections.mkdir(parents=True)
    unpack_bundled(downloads, collections)
    stamp.touch()
    log("unpacked %s from ansible %s into %s" % (" ".join(BUNDLED_COLLECTIONS), ANSIBLE_PACKAGE_VERSION,
                                                 collections.relative_to(ROOT)))


# --- 6. The wheelhouses the containers install from (they have no package index) ------------------------------

def fill_wheelhouse(wheelhouse: Path, stamp_name: str, platforms: list, requirements: list) -> bool:
    """Downloads REQUIREMENTS as wheels for the containers unless WHEELHOUSE already has them; True when it did."""
    stamp = wheelhouse / stamp_name
    if stamp.is_file():
        return False
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    pip("download", "--only-binary=:all:", *platforms, *requirements, "-d", str(wheelhouse))
    stamp.touch()
    return True


def ensure_wheelhouse() -> None:
    """ansible-core for the containers: the runner role installs its venv from it."""
    core_version = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "from importlib.metadata import version; print(version('ansible-core'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    if not (WORK / "wheelhouse" / (".ansible-core-%s" % core_version)).is_file():
        log("collecting wheels of ansible-core %s for the containers (Debian 12, Python 3.11)" % core_version)
    fill_wheelhouse(WORK / "wheelhouse", ".ansible-core-%s" % core_version,
                    CONTAINER_PLATFORM + ["--platform", "manylinux_2_34_x86_64"], ["ansible-core==" + core_version])


def ensure_app_wheelhouse() -> None:
    """The sample app's requirements as wheels: the old server's full backup carries them, and the
    disaster_recovery playbook rebuilds the app's venv from them on the new server, which has no package index."""
    requirements = ROOT / "examples/sample_app/skeleton/apps/collector/requirements.txt"
    stamp_name = ".requirements-%s" % short_hash(requirements.read_bytes(), 12)
    if not (WORK / "app-wheelhouse" / stamp_name).is_file():
        log("collecting wheels of the sample app's requirements (the disaster recovery rebuilds its venv offline)")
    fill_wheelhouse(WORK / "app-wheelhouse", stamp_name,
                    CONTAINER_PLATFORM + ["--platform", "manylinux_2_17_x86_64"], ["-r", str(requirements)])


# --- 7. The collection, built once for the whole run ------------------------------------------------------------

def build_collection() -> Path:
    """The runner role installs this tarball on the hosts: one build per run, so converge and idempotence install
    the same bytes (and an edit in the tree during a run does not count as a change of the host)."""
    dist = WORK / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    subprocess.run([str(VENV / "bin" / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                    str(dist), str(ROOT / "collections/ansible_collections/devops/reddit_backup")],
                   stdout=subprocess.DEVNULL, check=True)
    tarball = next(dist.glob("devops-reddit_backup-*.tar.gz"))
    install_collection(tarball)
    return tarball


def install_collection(tarball: Path) -> None:
    """The default scenario runs the collection as an operator has it: this tarball installed with ansible-galaxy
    into a scratch collections path (no galaxy.yml there, so the runner role ships the installed collection)."""
    installed = WORK / "installed-collections"
    shutil.rmtree(installed, ignore_errors=True)
    installed.mkdir(parents=True)
    subprocess.run([str(VENV / "bin" / "ansible-galaxy"), "collection", "install", "-p", str(installed),
                    str(tarball)], env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed)),
                   stdout=subprocess.DEVNULL, check=True)


# --- the scenarios --------------------------------------------------------------------------------------------

def host_suffix() -> str:
    """Container names end in a short hash of this checkout, so two checkouts on one machine (a CI clone beside a
    work tree) never touch each other's hosts."""
    return os.environ.get("MOLECULE_HOST_SUFFIX") or short_hash(str(ROOT).encode(), 8)


def molecule_environment(image: str) -> dict:
    home = WORK / "ansible-home"
    environment = dict(
        os.environ,
        PATH="%s:%s" % (VENV / "bin", os.environ.get("PATH", "")),
        VIRTUAL_ENV=str(VENV),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        # Molecule (its ephemeral folders live under $XDG_CACHE_HOME/molecule) and Ansible write here, not ~.
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        XDG_CACHE_HOME=str(WORK / "cache"),
        # This tree's collection first, then containers.podman.
        ANSIBLE_COLLECTIONS_PATH="%s:%s" % (ROOT / "collections", WORK / "collections"),
        MOLECULE_WHEELHOUSE=str(WORK / "wheelhouse"),
        MOLECULE_APP_WHEELHOUSE=str(WORK / "app-wheelhouse"),
        MOLECULE_HOST_IMAGE=image,
        MOLECULE_COLLECTION_TARBALL=str(build_collection()),
        MOLECULE_RESULTS_DIR=str(WORK / "results"),
        MOLECULE_HOST_SUFFIX=host_suffix(),
        NO_COLOR=os.environ.get("NO_COLOR", "1"),
        PY_COLORS="0",
        ANSIBLE_FORCE_COLOR="0",
    )
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    (WORK / "results").mkdir(parents=True, exist_ok=True)
    return environment


def summary_line(*columns) -> str:
    name, result, *seconds = columns
    return "%-18s %-7s %5ss" % (name, result, seconds[0]) if seconds else "%-18s %s" % (name, result)


def scenario_jobs() -> int:
    try:
        return max(1, int(os.environ.get("MOLECULE_JOBS", "2")))
    except ValueError:
        raise MoleculeError("MOLECULE_JOBS must be a whole number of scenarios to run at once, not %r"
                            % os.environ["MOLECULE_JOBS"]) from None


def test_scenario(scenario: str, environment: dict, log_path: Path | None) -> str:
    """`molecule test` of one scenario: its summary line. With a log path, its output goes there and is printed
    whole when it ends, so scenarios that run at once do not mix their lines."""
    started = time.monotonic()
    if log_path is None:
        print()
        log("=== molecule test -s %s ===" % scenario)
        passed = subprocess.run(["molecule", "test", "-s", scenario], cwd=ROOT, env=environment,
                                check=False).returncode == 0
    else:
        with open(log_path, "w", encoding="utf-8") as output:
            passed = subprocess.run(["molecule", "test", "-s", scenario], cwd=ROOT, env=environment,
                                    stdout=output, stderr=subprocess.STDOUT, check=False).returncode == 0
    line = summary_line(scenario, "ok" if passed else "FAILED", int(time.monotonic() - started))
    if log_path is not None:
        with PRINTING:
            print()
            log("=== molecule test -s %s (ran beside others; its whole output, from %s) ===" % (scenario, log_path))
            sys.stdout.write(log_path.read_text(encoding="utf-8", errors="replace"))
            log("=== %s ===" % line.strip())
            sys.stdout.flush()
    return line


def run_scenarios(scenarios: list, environment: dict, image: str, build_seconds: int | None) -> int:
    results = Path(environment["MOLECULE_RESULTS_DIR"])
    for old in list(results.glob("*.txt")) + list(results.glob("*.log")) + list(results.glob("*.measured.json")):
        old.unlink()
    summary = results / "summary.txt"
    for scenario in scenarios:
        if not (ROOT / "molecule" / scenario / "molecule.yml").is_file():
            raise MoleculeError("no scenario molecule/%s" % scenario)
    jobs = min(scenario_jobs(), len(scenarios))
    # Each scenario's hosts are its own containers (own names, own loopback-only namespaces), so scenarios can
    # run at once: most of a scenario's time is Ansible and systemd waiting, one core each at most.
    if jobs > 1:
        log("%d scenarios at a time (MOLECULE_JOBS), longest first as listed" % jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(test_scenario, scenario, environment,
                               results / ("%s.log" % scenario) if jobs > 1 else None) for scenario in scenarios]
        lines = [future.result() for future in futures]
    summary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print()
    log("=== summary (wall time per scenario) ===")
    print(summary_line("image build", "ok", build_seconds) if build_seconds is not None
          else summary_line("image build", "cached (%s)" % image))
    print("\n".join(lines))
    recovery_times = sorted(results.glob("*.recovery-times.txt"))
    if recovery_times:
        log("=== recovery times measured (RTO from detection to healthy, against the guide's targets) ===")
        for path in recovery_times:
            sys.stdout.write(path.read_text(encoding="utf-8"))
    sys.stdout.flush()
    # The READMEs show these figures: the scenarios that passed replace theirs in molecule/results/measured.json.
    subprocess.run([sys.executable, str(ROOT / "tools" / "render_measurements.py"), "--record-molecule",
                    str(results), "--image-build-seconds", "" if build_seconds is None else str(build_seconds)],
                   check=True)
    failed = sum(1 for line in lines if " FAILED " in line)
    if failed:
        raise MoleculeError("%d of %d scenarios FAILED" % (failed, len(scenarios)))
    log("all %d scenarios passed" % len(scenarios))
    return 0


def setup() -> tuple:
    """(image, seconds it took to build, or None when cached)."""
    if os.environ.get("SETUP_SKIP_APT", "0") != "1":
        ensure_packages(["molecule"])
        ensure_containers_conf()
    ensure_molecule()
    ensure_bundled_collections()
    ensure_wheelhouse()
    ensure_app_wheelhouse()
    return ensure_image()


def main(argv: list) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    os.chdir(ROOT)
    try:
        image, build_seconds = setup()
        if argv[:1] == ["--setup"]:
            log("set up; image %s" % image)
            return 0
        environment = molecule_environment(image)
        if argv[:1] == ["--"]:
            os.execvpe("molecule", ["molecule"] + argv[1:], environment)
        scenarios = argv or os.environ.get("MOLECULE_SCENARIOS", DEFAULT_SCENARIOS).split()
        return run_scenarios(scenarios, environment, image, build_seconds)
    except (MoleculeError, PackageError, subprocess.CalledProcessError) as error:
        print("[molecule] %s" % error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
