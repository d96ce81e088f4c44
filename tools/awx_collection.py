#!/usr/bin/env python3
"""The awx.awx collection, unpacked from the same pinned `ansible` package tools/molecule.py takes
containers.podman from (downloaded once into build/molecule/downloads), into build/awx/collections: what the AWX
as code tests read the modules' documentation from, and what `make lint` resolves awx/apply.yml's modules with.

    python tools/awx_collection.py        # prints the collections folder (ANSIBLE_COLLECTIONS_PATH)
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "build" / "awx" / "collections"
WANTED = ["awx/awx"]


def _molecule_tool():
    """tools/molecule.py as a module (tools/ is no package, and `molecule` is also the pip package's name)."""
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("reddit_backup_molecule_tool", ROOT / "tools" / "molecule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_awx_collection() -> Path:
    """The folder to put on ANSIBLE_COLLECTIONS_PATH; unpacked once per pinned ansible version."""
    tool = _molecule_tool()
    stamp = DEST / (".ansible-%s" % tool.ANSIBLE_PACKAGE_VERSION)
    if not stamp.is_file():
        downloads = tool.download_ansible_package(WANTED)
        shutil.rmtree(DEST, ignore_errors=True)
        DEST.mkdir(parents=True)
        tool.unpack_bundled(downloads, DEST, WANTED)
        stamp.touch()
    return DEST


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the path alone: Makefiles read it
        folder = ensure_awx_collection()
    print(folder)
