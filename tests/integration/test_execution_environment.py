"""execution-environment.yml: ansible-builder accepts it and lays out a build context with the collection tarball
(building the image itself needs a container engine and a registry, which CI does not have)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.integration.runner import REPO

pytestmark = pytest.mark.integration
BIN = os.path.dirname(sys.executable)


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "ansible-builder")), reason="ansible-builder not installed")
def test_ansible_builder_creates_the_build_context(tmp_path):
    shutil.copy(os.path.join(REPO, "execution-environment.yml"), tmp_path)
    (tmp_path / "collections").mkdir()
    shutil.copy(os.path.join(REPO, "collections", "requirements.yml"), tmp_path / "collections")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "build"),
                    os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup")],
                   check=True, capture_output=True)
    # The file's name follows the container engine found on the machine (Containerfile for podman, Dockerfile for
    # docker or none): name it, so the context is the same on a fresh machine and on one where podman is installed.
    created = subprocess.run([os.path.join(BIN, "ansible-builder"), "create", "--file", "execution-environment.yml",
                              "--context", "context", "--output-filename", "Containerfile"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert created.returncode == 0, created.stdout + created.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install --offline" in containerfile
    tarballs = os.listdir(tmp_path / "context" / "_build" / "collections")
    assert len(tarballs) == 1 and tarballs[0].startswith("devops-reddit_backup-")
    # the EE runs the ansible-core the collection is tested with (requirements-dev.txt)
    with open(os.path.join(REPO, "requirements-dev.txt")) as handle:
        pin = [line.strip() for line in handle if line.startswith("ansible-core==")][0]
    assert 'ARG ANSIBLE_INSTALL_REFS="%s ansible-runner"' % pin in containerfile
