# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application's systemd units as they were at backup time (enabled? running? started by a timer?), so a
restore onto a host that no longer knows them (a new server, units removed) can put them back as they were."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

UNIT_DIR = "systemd"
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@-]{1,200}\.(service|timer)$")
PROPERTIES = ("LoadState", "UnitFileState", "ActiveState", "TriggeredBy")
ACTIVE_STATES = ("active", "activating", "reloading")
TIMEOUT_SECONDS = 10


def unit_names(entries) -> list:
    """The unit files (``*.service``, ``*.timer``) directly under the app root's systemd/ among the selected
    entries, by name."""
    return sorted({os.path.basename(entry.path) for entry in entries
                   if entry.kind in ("file", "symlink") and os.path.dirname(entry.path) == UNIT_DIR
                   and UNIT_NAME.match(os.path.basename(entry.path))})


def record(names: list) -> tuple:
    """({name: {enabled, active, triggered_by}} of the units systemd knows, None) or (None, why nothing was
    recorded). Never raises: a backup is never failed for want of the units' states."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None, "unit states not recorded: systemctl is not installed on this host"
    states = {}
    for name in names:
        try:
            shown = subprocess.run([systemctl, "show", "--no-pager", "-p", ",".join(PROPERTIES), "--", name],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT_SECONDS,
                                   env=dict(os.environ, LC_ALL="C", SYSTEMD_PAGER=""), check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, "unit states not recorded: systemctl show %s failed (%s)" % (name, error)
        if shown.returncode != 0:
            reason = shown.stderr.decode(errors="replace").strip().splitlines()
            return None, "unit states not recorded: systemctl show %s failed (%s)" \
                % (name, reason[-1] if reason else "exit status %d" % shown.returncode)
        state = parse_show(shown.stdout.decode(errors="replace"))
        if state is not None:
            states[name] = state
    return states, None


def parse_show(text: str):
    """One unit's state from `systemctl show -p ...` output (``Key=value`` lines), or None when systemd does not
    know the unit (nothing to record)."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if values.get("LoadState", "not-found") in ("not-found", ""):
        return None
    return {"enabled": values.get("UnitFileState") == "enabled",
            "active": values.get("ActiveState") in ACTIVE_STATES,
            "triggered_by": values.get("TriggeredBy", "").split()}


def recorded(manifest: dict):
    """The units' states a manifest records, keeping only well-formed entries; None when it records none (a
    backup made before they were recorded, or where systemctl could not tell)."""
    units = manifest.get("units")
    if not isinstance(units, dict):
        return None
    return {name: {"enabled": state["enabled"], "active": state["active"],
                   "triggered_by": [unit for unit in state["triggered_by"] if UNIT_NAME.match(unit)]}
            for name, state in units.items()
            if isinstance(name, str) and UNIT_NAME.match(name) and _well_formed(state)}


def _well_formed(state) -> bool:
    return isinstance(state, dict) and isinstance(state.get("enabled"), bool) \
        and isinstance(state.get("active"), bool) and isinstance(state.get("triggered_by"), list) \
        and all(isinstance(unit, str) for unit in state["triggered_by"])
