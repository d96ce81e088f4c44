# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wheelhouse a full backup can carry: the wheels of the application's Python requirements, built on the
controller (``pip wheel -r apps/collector/requirements.txt -w DIR``), stored under ``wheelhouse/`` in the
archive, so a new server without internet rebuilds the venv with
``pip install --no-index --find-links APP_ROOT/wheelhouse -r apps/collector/requirements.txt``.

The wheels ride along: they are members of the archive (hashed, verified and restored like any file) but not
part of the application's state, so the state index that incremental backups build on leaves them out, and an
incremental restored on top of its full backup keeps the full backup's wheelhouse.
"""

from __future__ import annotations

import os
import re
import zipfile

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._nofollow import open_regular
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.selection import Entry

ARCHIVE_DIR = "wheelhouse"
REQUIREMENTS = "apps/collector/requirements.txt"
# PEP 427: {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
WHEEL_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-\d[A-Za-z0-9_.]*)?"
                        r"-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-(?P<platform>[A-Za-z0-9_.]+)\.whl$")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
REQUIREMENTS_MAX_BYTES = 1 << 20


def carried(path: str) -> bool:
    """True for the archive paths of the wheelhouse (not part of the application's state)."""
    return path == ARCHIVE_DIR or path.startswith(ARCHIVE_DIR + "/")


def normalize(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_wheels(folder: str) -> tuple:
    """([(file name, path)] of the wheels in ``folder``, warnings). Every wheel must be a readable zip file."""
    if not os.path.isdir(folder):
        raise BackupError("wheelhouse %s is not a directory on this host; copy the wheels built on the controller "
                          "(pip wheel -r apps/collector/requirements.txt -w DIR) to the host first" % folder)
    wheels, warnings = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".whl"):
            warnings.append("wheelhouse: %s is not a wheel and was left out (pip install --no-index needs wheels)"
                            % name)
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            warnings.append("wheelhouse: %s is not a regular file and was left out" % name)
            continue
        if not WHEEL_NAME.match(name):
            raise BackupError("wheelhouse: %s is not named as a wheel is (name-version-python-abi-platform.whl); "
                              "rebuild it with pip wheel" % path)
        if not zipfile.is_zipfile(path):
            raise BackupError("wheelhouse: %s is not a valid wheel (not a zip file); rebuild it with pip wheel" % path)
        wheels.append((name, path))
    if not wheels:
        raise BackupError("wheelhouse %s holds no wheels; build them on the controller with pip wheel -r "
                          "apps/collector/requirements.txt -w %s" % (folder, folder))
    return wheels, warnings


def missing_requirements(requirements_path: str, wheel_names) -> list:
    """The projects named in the requirements file that no wheel provides (only the top-level names: their own
    dependencies are pip's to resolve)."""
    try:  # an app file: never through a symlink (it could point at a root-only file), never a FIFO
        with open_regular(requirements_path) as handle:
            lines = handle.read(REQUIREMENTS_MAX_BYTES).decode("utf-8").splitlines()
    except (OSError, BackupError, UnicodeDecodeError):
        return []
    provided = {normalize(WHEEL_NAME.match(name).group("name")) for name in wheel_names}
    missing = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = REQUIREMENT_NAME.match(line)
        if match and normalize(match.group(1)) not in provided:
            missing.append(match.group(1))
    return missing


def add_to_selection(selection, folder: str, app_root: str) -> dict:
    """Append the wheelhouse to a full backup's selection as ``wheelhouse/<wheel>``; returns its summary."""
    clash = [entry.path for entry in selection.entries if carried(entry.path)]
    if clash:
        raise BackupError("%s already has a %s/ folder of its own, where the wheelhouse would go in the backup; move "
                          "it away or exclude it (exclude: [%s])" % (app_root, ARCHIVE_DIR, ARCHIVE_DIR))
    folder = os.path.abspath(folder)
    wheels, warnings = read_wheels(folder)
    selection.entries.append(Entry(ARCHIVE_DIR, folder, "dir", os.stat(folder)))
    total = 0
    for name, path in wheels:
        info = os.lstat(path)
        total += info.st_size
        selection.entries.append(Entry("%s/%s" % (ARCHIVE_DIR, name), path, "file", info))
    missing = missing_requirements(os.path.join(app_root, REQUIREMENTS), [name for name, _path in wheels])
    if missing:
        warnings.append("wheelhouse: no wheel for %s, named in %s; pip install --no-index on a new server would fail. "
                        "Rebuild it with pip wheel -r %s" % (", ".join(missing), REQUIREMENTS, REQUIREMENTS))
    selection.warnings += warnings
    return {"path": folder, "wheels": len(wheels), "bytes": total, "missing": missing}
