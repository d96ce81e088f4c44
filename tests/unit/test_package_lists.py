"""tools/packages.txt covers every external program the project calls, for every step that calls it.

A fresh Debian 12 machine has only the Priority: required packages; every other program a suite, tool, playbook
or the engine runs must come from a package the step's setup installs (tools/setup.sh STEP). The scan is
tools/programs.py; these tests also prove it catches a new program, so adding one without declaring it fails.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """tools/NAME.py as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("harness_" + name, REPO / "tools" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


programs = load_tool("programs")
packages = load_tool("packages")
STEPS, DECLARED = programs.parse_packages()


def makefile_test_steps() -> list:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return re.search(r"^TEST_STEPS := (.+)$", text, re.MULTILINE).group(1).split()


def test_every_make_step_has_a_declared_package_list():
    wanted = set(makefile_test_steps()) | {"base", "demo", "bench", "fresh-check", "molecule-image"}
    assert wanted <= set(STEPS), "steps without a `step` line in tools/packages.txt: %s" % (wanted - set(STEPS))
    assert set(programs.STEP_SOURCES) <= set(STEPS)


@pytest.mark.parametrize("step", sorted(programs.STEP_SOURCES))
def test_every_program_a_step_calls_is_in_its_package_list(step):
    assert programs.problems(step, STEPS, DECLARED) == []


@pytest.mark.parametrize("step", sorted(STEPS))
def test_setup_sh_installs_the_same_list_the_check_reads(step):
    listed = subprocess.run([str(REPO / "tools" / "setup.sh"), "--list", step], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == programs.step_packages(step)


def test_setup_sh_refuses_a_step_it_does_not_know():
    completed = subprocess.run([str(REPO / "tools" / "setup.sh"), "--list", "no-such-step"], capture_output=True,
                               text=True, check=False)
    assert completed.returncode != 0
    assert "no step no-such-step in tools/packages.txt" in completed.stderr


def depends_of(package: str) -> set:
    fields = subprocess.run(["dpkg-query", "-W", "-f=${Pre-Depends}, ${Depends}", package], capture_output=True,
                            text=True, check=False).stdout
    return {re.split(r"[\s:(]", alternative.strip())[0] for alternative in re.split(r"[,|]", fields) if alternative.strip()}


def test_each_declared_program_comes_from_its_declared_package():
    """Where the program is installed here, its package is the declared one (or one the declared one pulls in,
    as python3 pulls in python3-minimal, which ships /usr/bin/python3)."""
    checked = 0
    for program, package in sorted(DECLARED.items()):
        owner = programs.providing_package(program)
        if package == "-" or not owner:
            continue
        assert owner == package or owner in depends_of(package), (
            "%s comes from %s here, not from %s as tools/packages.txt says" % (program, owner, package))
        checked += 1
    assert checked >= 10


def test_the_demo_installs_no_server():
    assert not {"openssh-server", "prometheus"} & set(programs.step_packages("demo"))


def test_a_program_nobody_declared_fails_the_check(tmp_path):
    """A new call in Python, in a playbook and in a shell script is caught, and so is a declared program whose
    package the calling step does not install."""
    unit = tmp_path / "tests" / "unit"
    unit.mkdir(parents=True)
    (tmp_path / "tests" / "helper.py").write_text(
        "import subprocess\ndef serve():\n    return subprocess.Popen(['sshd', '-D'])\n", encoding="utf-8")
    (unit / "test_new.py").write_text(
        "import shutil, subprocess\nfrom tests.helper import serve\n"
        "def test_it(tmp_path):\n"
        "    subprocess.run(['sqlite3', str(tmp_path / 'db'), 'select 1'], check=True)\n"
        "    assert shutil.which('frobnicate-tool')\n", encoding="utf-8")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "demo.yml").write_text(
        "- hosts: localhost\n  tasks:\n    - name: Count\n      ansible.builtin.command:\n"
        "        argv: [zstd, --version]\n", encoding="utf-8")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "run.sh").write_text("#!/usr/bin/env bash\nset -e\nrsync --version | head -1\n",
                                               encoding="utf-8")
    steps = {"base": ["make"], "unit": [], "demo": [], "bench": []}
    unit_problems = programs.problems("unit", steps, DECLARED, root=tmp_path)
    assert any("`sqlite3`: its package sqlite3 is not in step unit" in problem for problem in unit_problems)
    assert any("`frobnicate-tool` (not installed here): declare" in problem for problem in unit_problems)
    assert any("tests/helper.py calls `sshd`" in problem for problem in unit_problems), unit_problems
    assert any("`zstd`" in problem for problem in programs.problems("demo", steps, DECLARED, root=tmp_path))
    assert any("`rsync`" in problem for problem in programs.problems("bench", steps, DECLARED, root=tmp_path))
    covered = {"base": ["make"], "unit": ["sqlite3", "openssh-server"], "demo": ["zstd"], "bench": ["rsync"]}
    assert programs.problems("demo", covered, DECLARED, root=tmp_path) == []
    assert programs.problems("bench", covered, DECLARED, root=tmp_path) == []


def test_every_step_of_make_test_installs_its_own_packages():
    """Each target calls `tools/setup.sh` with its own step (so any order works on a fresh machine), and `make test`
    does not skip it."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    for step in makefile_test_steps() + ["demo", "bench", "fresh-check"]:
        recipe = re.search(r"^%s:\n((?:\t.*\n)+)" % re.escape(step), text, re.MULTILINE)
        assert recipe, "no recipe for make %s" % step
        assert recipe.group(1).startswith("\t$(call setup_for,%s)\n" % step), "make %s sets up another step" % step
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", text, re.MULTILINE).group(1)
    assert "SKIP_SETUP=1" not in test_recipe


# dpkg's status file as dpkg writes it: one stanza a package, `Status: want flag state`.
DPKG_STATUS = """\
Package: make
Status: install ok installed
Architecture: amd64
Description: utility for directing compilation
 GNU Make is a utility which controls the generation of executables.

Package: git
Status: deinstall ok config-files
Architecture: amd64

Package: python3
Status: install ok installed
Architecture: amd64

Package: ca-certificates
Status: install ok half-configured
Architecture: all
"""


def test_the_package_check_reads_dpkg_status_and_names_what_is_missing(tmp_path):
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS, encoding="utf-8")
    assert packages.installed_packages(status) == {"make", "python3"}
    assert packages.missing_packages(["make", "python3", "python3-venv", "git", "ca-certificates"], status) == [
        "python3-venv", "git", "ca-certificates"]


def test_the_package_check_finds_every_base_package_installed_here():
    """This machine ran tools/setup.sh: the real status file has every base and unit package."""
    assert packages.missing_packages(packages.step_packages("unit")) == []


def test_setup_sh_installs_nothing_when_apt_is_skipped(tmp_path):
    """SETUP_SKIP_APT=1 is the promise to a machine whose packages someone else manages: even with every package
    missing, nothing is installed."""
    empty = tmp_path / "status"
    empty.write_text("", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SETUP_SKIP_APT", "1")
        assert packages.ensure_packages(["unit"], status_file=empty) == []


def test_setup_sh_molecule_and_fresh_check_share_the_one_package_check():
    setup = (REPO / "tools" / "setup.sh").read_text(encoding="utf-8")
    molecule = (REPO / "tools" / "molecule.py").read_text(encoding="utf-8")
    assert 'python3 "$ROOT/tools/packages.py" "$@"' in setup
    assert "dpkg-query" not in setup and "apt-get install -y -qq --no-install-recommends $" not in setup
    assert "from packages import" in molecule and "dpkg" not in molecule
    fresh_check = (REPO / "tools" / "fresh-check.sh").read_text(encoding="utf-8")
    assert 'tools/packages.py" --installed "$ROOTFS/var/lib/dpkg/status"' in fresh_check
    assert "dpkg-query" not in fresh_check


def test_the_package_check_answers_for_another_root(tmp_path, capsys):
    """fresh-check asks it which server packages the demo installed in the fresh root (that root's status file)."""
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS, encoding="utf-8")
    assert packages.main(["--installed", str(status), "openssh-server", "make", "prometheus"]) == 0
    assert capsys.readouterr().out.split() == ["make"]
