"""Where the bench finds the repository, the collection, the targets' python and the venv's tools."""

from __future__ import annotations

import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # tests/ansiblerun.py: how the harness runs Ansible

# Modules run with the targets' own python (Debian 12: 3.11.2), as the integration tests do.
from tests.ansiblerun import COLLECTIONS, TARGET_PYTHON  # noqa: E402,F401


def venv_bin(tool: str) -> str:
    """``tool`` from the running python's bin directory (the venv), else from PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), tool)
    if os.path.exists(beside):
        return beside
    found = shutil.which(tool)
    if found is None:
        raise SystemExit("bench: %s not found; run from the project's venv (make bench)" % tool)
    return found
