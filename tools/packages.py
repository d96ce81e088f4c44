#!/usr/bin/env python3
"""The Debian packages of each `make` step (tools/packages.txt): list them, find the missing ones, install those.

    python3 tools/packages.py --list STEP...   the packages of base and each STEP, one a line; install nothing
    python3 tools/packages.py STEP...          install what base and each STEP need and this machine lacks

The one package check of the harness: tools/setup.sh, tools/molecule.py and tools/programs.py use it. Whether a
package is installed is read from dpkg's status file (what `dpkg-query` reads). Installing a test dependency never
starts a service nor leaves one enabled: Debian starts and enables sshd and Prometheus when their packages are
installed on a systemd host (and runs their init scripts in a chroot). During the install a policy-rc.d answers
101 ("action forbidden") to every start; afterwards every unit the install enabled is disabled again (and
stopped, should anything have started it). Stdlib only: it runs before the venv exists.

Environment: SETUP_SKIP_APT=1 installs nothing (a machine where someone else manages the Debian packages).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_FILE = ROOT / "tools" / "packages.txt"
DPKG_STATUS = Path("/var/lib/dpkg/status")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
POLICY_RC_D_SAVED = Path("/usr/sbin/policy-rc.d.setup-saved")
POLICY_TEXT = "#!/bin/sh\n# tools/packages.py: no service starts while the harness installs packages.\nexit 101\n"
# One install at a time on this machine: two checkouts must not swap each other's policy-rc.d.
APT_LOCK = Path(tempfile.gettempdir()) / "reddit-backup-setup-apt.lock"


class PackageError(Exception):
    """A package list or an install that cannot go on; the message says what to do."""


def log(message: str) -> None:
    print("[setup] %s" % message, flush=True)


def parse_packages(path: Path = PACKAGES_FILE) -> tuple[dict, dict]:
    """(steps, programs): steps maps a step to its packages (its `@step` includes resolved, base not added);
    programs maps a program to the package that provides it ('-' for optional programs used only when found)."""
    raw_steps: dict = {}
    programs: dict = {}
    last_step = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "step" and len(words) >= 2:
            last_step = words[1]
            raw_steps[last_step] = words[2:]
        elif words[0] == "+" and last_step:
            raw_steps[last_step] += words[1:]
        elif words[0] == "program" and len(words) == 3:
            programs[words[1]] = words[2]
        else:
            raise ValueError("%s:%d: expected `step NAME PACKAGE...` or `program NAME PACKAGE`" % (path, number))

    def resolve(step: str, seen: tuple) -> list:
        if step not in raw_steps:
            raise ValueError("%s: no step %r (named by %s)" % (path, step, " -> ".join(seen) or "the caller"))
        if step in seen:
            raise ValueError("%s: the includes of step %r loop" % (path, step))
        packages: list = []
        for word in raw_steps[step]:
            for package in resolve(word[1:], seen + (step,)) if word.startswith("@") else [word]:
                if package not in packages:
                    packages.append(package)
        return packages

    return {step: resolve(step, ()) for step in raw_steps}, programs


def own_packages(step: str, path: Path = PACKAGES_FILE) -> list:
    """STEP's own packages, base not added (the molecule image has no base)."""
    steps, _ = parse_packages(path)
    if step not in steps:
        raise PackageError("no step %s in tools/packages.txt" % step)
    return steps[step]


def step_packages(*wanted: str, path: Path = PACKAGES_FILE) -> list:
    """The Debian packages the steps need: base first, then each step's own, each package once."""
    packages: list = []
    for step in ("base",) + tuple(name for name in wanted if name != "base"):
        for package in own_packages(step, path):
            if package not in packages:
                packages.append(package)
    return packages


def installed_packages(status_file: Path = DPKG_STATUS) -> set:
    """The packages dpkg's status file records as installed (`Status: install ok installed`)."""
    installed: set = set()
    try:
        stanzas = status_file.read_text(encoding="utf-8", errors="replace").split("\n\n")
    except FileNotFoundError:
        return installed
    for stanza in stanzas:
        fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line[0].isspace())
        status = fields.get("Status", "").split()
        if status and status[-1] == "installed" and "Package" in fields:
            installed.add(fields["Package"].strip())
    return installed


def missing_packages(packages: list, status_file: Path = DPKG_STATUS) -> list:
    installed = installed_packages(status_file)
    return [package for package in packages if package not in installed]


# optional-program: sudo (only when not root, and only where it is installed)
def as_root(argv: list) -> list:
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo"):
        return ["sudo"] + argv
    raise PackageError("need root (or sudo) to run: %s" % " ".join(argv))


def run_as_root(argv: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(as_root(argv), check=kwargs.pop("check", True), **kwargs)


# optional-program: systemctl (a machine without systemd has no units to keep disabled)
def enabled_units() -> set:
    if not shutil.which("systemctl"):
        return set()
    # systemctl exits 1 when no unit matches: that is an empty list, not an error.
    listed = subprocess.run(["systemctl", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager"],
                            capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


@contextlib.contextmanager
def services_forbidden():
    """Our policy-rc.d for the install; the machine's own (Docker images ship one) is given back afterwards."""
    if POLICY_RC_D.exists() and not POLICY_RC_D_SAVED.exists():
        run_as_root(["mv", str(POLICY_RC_D), str(POLICY_RC_D_SAVED)])
    run_as_root(["tee", str(POLICY_RC_D)], input=POLICY_TEXT, text=True, stdout=subprocess.DEVNULL)
    run_as_root(["chmod", "0755", str(POLICY_RC_D)])
    try:
        yield
    finally:
        run_as_root(["rm", "-f", str(POLICY_RC_D)])
        if POLICY_RC_D_SAVED.exists():
            run_as_root(["mv", str(POLICY_RC_D_SAVED), str(POLICY_RC_D)])


def disable_new_units(before: set) -> None:
    """Units the install enabled go back to disabled (and stopped): a test starts its own servers on 127.0.0.1."""
    for unit in sorted(enabled_units() - before):
        log("disabling %s (enabled by this install; the harness leaves no unit enabled, tests start their own "
            "servers)" % unit)
        run_as_root(["systemctl", "disable", "--quiet", unit], check=False, stderr=subprocess.DEVNULL)
        if subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0:
            run_as_root(["systemctl", "stop", unit], check=False)


def apt_install(packages: list) -> None:
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(APT_LOCK, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = enabled_units()
        with services_forbidden():
            # Some machines carry third-party apt sources that cannot be reached; the Debian mirror is what we
            # need, so a partial update is not fatal: the install below fails loudly if a package cannot be had.
            if run_as_root(["apt-get", "update", "-qq"], check=False, env=environment).returncode != 0:
                log("apt-get update reported errors (unreachable extra sources?); going on")
            installed = run_as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages,
                                    check=False, env=environment)
        disable_new_units(before)
    if installed.returncode != 0:
        raise PackageError("apt-get install exited %d" % installed.returncode)


def ensure_packages(steps: list, status_file: Path = DPKG_STATUS) -> list:
    """Installs the packages of base and STEPS this machine lacks; returns what it installed."""
    if os.environ.get("SETUP_SKIP_APT", "0") == "1":
        return []
    wanted = step_packages(*steps)
    missing = missing_packages(wanted, status_file)
    if not missing:
        return []
    log("installing Debian packages for %s: %s" % (" ".join(steps) or "base", " ".join(missing)))
    apt_install(missing)
    still_missing = missing_packages(wanted, status_file)
    if still_missing:
        raise PackageError("still missing after apt-get install: %s" % " ".join(still_missing))
    return missing


def main(argv: list) -> int:
    try:
        if argv[:1] == ["--list"]:
            print("\n".join(step_packages(*argv[1:])))
        elif argv[:1] == ["--installed"] and len(argv) > 1:
            # --installed STATUS_FILE PACKAGE...: those of PACKAGE installed per STATUS_FILE (another root's too)
            installed = installed_packages(Path(argv[1]))
            print("\n".join(package for package in argv[2:] if package in installed))
        else:
            ensure_packages(argv)
    except (PackageError, ValueError) as error:
        print("[setup] %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
