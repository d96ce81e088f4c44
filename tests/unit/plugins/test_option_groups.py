"""The option groups several modules share are declared once: the argument spec in module_utils/_option_specs.py
(the remote's in _remote.py) and the documentation in one doc fragment each. A module that writes such an option
into its own DOCUMENTATION is drifting from the others, unless the option means something else there (listed below,
with what it means). ansible-test sanity (validate-modules) then checks each module's spec against the fragment."""

from __future__ import annotations

import ast
import glob
import os

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils import _option_specs
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import sync as _remote

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLUGINS = os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup", "plugins")

# fragment -> the argument spec it documents
GROUPS = {
    "devops.reddit_backup.backup_dir": _option_specs.BACKUP_DIR,
    "devops.reddit_backup.lock_timeout": _option_specs.LOCK_TIMEOUT,
    "devops.reddit_backup.selection": _option_specs.SELECTION,
    "devops.reddit_backup.selection.type": _option_specs.SELECTION_TYPE,
    "devops.reddit_backup.identity": _option_specs.IDENTITY,
    "devops.reddit_backup.trusted_signers": _option_specs.TRUSTED_SIGNERS,
    "devops.reddit_backup.remote": _remote.REMOTE_ARGUMENT_SPEC,
}
# (module, option) documented by the module itself, because it means something else there
OWN_MEANING = {
    ("backup_create", "type"): "the type of backup to make (default full), not a filter",
    ("backup_create", "name"): "the name of the backup to make",
    ("backup_info", "backup_dir"): "only read: never created",
    ("backup_verify", "backup_dir"): "optional: one of archive or backup_dir",
    ("backup_restore", "backup_dir"): "optional: one of archive or backup_dir",
    ("backup_metrics", "backup_dir"): "only read, for the catalog's figures",
    ("backup_sync", "remote"): "required here (optional for backup_prune)",
    ("backup_sync", "before"): "with select=before: what to copy, not one backup",
    ("backup_sync", "type"): "what to copy, not one backup",
    ("backup_notify", "type"): "a label of the run being reported",
    ("backup_notify", "timeout"): "seconds for the webhook or mail server, not a remote",
}


def module_docs():
    for path in sorted(glob.glob(os.path.join(PLUGINS, "modules", "*.py"))):
        for node in ast.parse(open(path, encoding="utf-8").read()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
                yield os.path.basename(path)[:-3], yaml.safe_load(node.value.value)


def fragment_options(fragment: str) -> dict:
    parts = fragment.split(".")
    path = os.path.join(PLUGINS, "doc_fragments", parts[2] + ".py")
    attribute = parts[3].upper() if len(parts) > 3 else "DOCUMENTATION"
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == attribute:
            return yaml.safe_load(node.value.value)["options"]
    raise AssertionError("%s has no %s" % (path, attribute))


@pytest.mark.parametrize("fragment", sorted(GROUPS))
def test_each_fragment_documents_exactly_its_spec(fragment):
    documented = fragment_options(fragment)
    spec = GROUPS[fragment]
    assert sorted(documented) == sorted(spec)
    for option, entry in spec.items():
        assert documented[option].get("type") == entry.get("type"), option
        assert documented[option].get("default") == entry.get("default"), option
        assert documented[option].get("choices") == entry.get("choices"), option
        assert bool(documented[option].get("required")) == bool(entry.get("required")), option


def test_no_module_documents_a_shared_option_itself():
    shared = {option: fragment for fragment, spec in GROUPS.items() for option in spec}
    drifting = []
    for module, doc in module_docs():
        for option in doc.get("options") or {}:
            if option in shared and (module, option) not in OWN_MEANING:
                drifting.append("%s documents %s itself; use the fragment %s" % (module, option, shared[option]))
    assert not drifting


def test_the_exceptions_are_real():
    """An exception that no longer applies is removed, so the list cannot hide a new copy."""
    own = {(module, option) for module, doc in module_docs() for option in doc.get("options") or {}}
    assert not set(OWN_MEANING) - own


def test_shared_options_copies_what_it_shares():
    spec = _option_specs.shared_options(_option_specs.LOCK_TIMEOUT, extra={"type": "str"})
    spec["lock_timeout"]["default"] = 1
    assert _option_specs.LOCK_TIMEOUT["lock_timeout"]["default"] == 60
    assert spec["extra"] == {"type": "str"}
