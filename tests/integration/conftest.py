"""Fixtures for the integration suite, and the rule that it leaves this machine's systemd folder as it found it
(a restore playbook run without its own reddit_backup_systemd_dir would install the sample app's units there)."""

import os

import pytest

from tests.integration.runner import play  # noqa: F401  (a fixture)

HOST_UNITS = "/etc/systemd/system"


def _unit_files() -> set:
    try:
        return set(os.listdir(HOST_UNITS))
    except FileNotFoundError:
        return set()


@pytest.fixture(autouse=True)
def host_units_untouched():
    """Each test writes unit files only into its own folders, never into the machine's /etc/systemd/system."""
    before = {name: os.stat(os.path.join(HOST_UNITS, name)).st_mtime_ns for name in _unit_files()}
    yield
    after = {name: os.stat(os.path.join(HOST_UNITS, name)).st_mtime_ns for name in _unit_files()}
    touched = sorted(name for name in after if before.get(name) != after[name])
    assert not touched, ("the test wrote %s into this machine's %s: give it reddit_backup_systemd_dir (or the "
                         "module's systemd_dir) under its tmp_path" % (", ".join(touched), HOST_UNITS))
