"""backup_restore through ansible-playbook on localhost (as root) against a hostile filesystem (issue 10): the app
user (nobody) plants a fake killed restore's staging folder, a compromised store composes a chain whose links
escape together and rewrites its deletion list. The module stops with a message naming the path; nothing
outside the destination changes."""

from __future__ import annotations

import shutil

import pytest

from tests.unit.plugins.module_utils.builders import tree
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    PLANT_STAGING, _make_chain, as_nobody, hostile_backup as backup, hostile_world, rewrite,
)

pytestmark = pytest.mark.needs_root  # the attacker steps run as nobody, started by root


@pytest.fixture
def world():
    yield from hostile_world()


def restore(task="restore", **options) -> dict:
    return {"name": task, "devops.reddit_backup.backup_restore": options}


def test_the_module_refuses_a_planted_staging_folder(world, play):
    app, outside = world / "home" / "app", world / "outside"
    made = backup(app, world / "backups")
    planted = app.parent / ".reddit-restore-app-0000"
    legacy = app.parent / ".tmp-restore-app-0000"
    for folder in (planted, legacy):
        as_nobody(PLANT_STAGING, folder, outside, app)
    before_outside, before_app = tree(outside), tree(app)
    result = play([restore(archive=made["archive"], dest=str(app))])
    assert result.failed
    message = result.result("restore")["msg"]
    assert "refusing to recover %s" % planted in message and "Traceback" not in message
    assert tree(outside) == before_outside and tree(app) == before_app
    shutil.rmtree(str(planted))
    again = play([restore(archive=made["archive"], dest=str(app))])
    assert not again.failed, again.stderr
    assert any(str(legacy) in warning for warning in again.result("restore")["warnings"])
    assert tree(outside) == before_outside and (legacy / "payload").exists()


def test_the_module_judges_symlinks_against_the_composed_chain(world, play):
    _app, _full, incremental = _make_chain(world, {"l": "d/up/../.."}, {"d/up": ".."})
    rewrite(incremental["archive"], deleted=["l/outside/victim"])
    before = tree(world / "outside")
    result = play([restore(archive=incremental["archive"], dest=str(world / "restored"))])
    assert result.failed and "symlink l -> d/up/../.. leads outside" in result.result("restore")["msg"]
    assert tree(world / "outside") == before and not (world / "restored").exists()
