"""The operator's contract, statically: every reddit_backup_* variable the collection's playbooks, roles, site
playbooks and example inventories use is declared once by the devops.reddit_backup.reddit_backup role
(defaults/main.yml and meta/argument_specs.yml agree), no collection play shadows the inventory with play vars, and
docs/variables.md is what tools/render_variables.py makes of the declaration."""

from __future__ import annotations

import glob
import importlib.util
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup")
ROLE = os.path.join(COLLECTION, "roles", "reddit_backup")
NAME = re.compile(r"\breddit_backup_[a-z0-9_]+\b")
# Prometheus series and file names that merely start the same way (the monitoring role's output, not variables).
NOT_VARIABLES = re.compile(r"reddit_backup_(cli|[a-z_]+_(seconds|bytes|ratio|success|backups)|backups|\{\{)")


def load(path: str):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def declared() -> dict:
    return load(os.path.join(ROLE, "meta", "argument_specs.yml"))["argument_specs"]["main"]["options"]


def results() -> list:
    return load(os.path.join(ROLE, "vars", "main.yml"))["__reddit_backup_results"]


def renderer():
    path = os.path.join(REPO, "tools", "render_variables.py")
    spec = importlib.util.spec_from_file_location("render_variables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def yaml_files() -> list:
    patterns = ["playbooks/*.yml", "playbooks/tasks/*.yml", "roles/*/*/*.yml", "roles/*/templates/*.j2"]
    files = [path for pattern in patterns for path in glob.glob(os.path.join(COLLECTION, pattern))
             if not path.startswith(ROLE + os.sep + "meta")]  # the declaration itself (its text names a typo)
    files += glob.glob(os.path.join(REPO, "playbooks", "*.yml"))
    files += glob.glob(os.path.join(REPO, "inventories", "*", "group_vars", "*.yml"))
    return sorted(files)


def names_used(path: str) -> set:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"reddit_backup_[a-z0-9_]*\.rules\.yml|reddit_backup_\{\{[^}]*\}\}\.prom", "", text)
    return {name for name in NAME.findall(text) if not NOT_VARIABLES.match(name)}


def test_defaults_and_argument_spec_declare_the_same_names():
    assert set(load(os.path.join(ROLE, "defaults", "main.yml"))) == set(declared()) - {"reddit_backup_hosts"}


def test_each_default_is_the_documented_one():
    values = load(os.path.join(ROLE, "defaults", "main.yml"))
    for name, value in values.items():
        spec = declared()[name]
        if isinstance(value, str) and "{{" in value:
            assert "default" not in spec, "%s: a templated default is described in words, not as a value" % name
        else:
            assert spec.get("default") == value, name


def test_every_option_says_what_reads_it():
    for name, spec in declared().items():
        assert any(line.startswith("Read by: ") for line in spec["description"]), name


@pytest.mark.parametrize("path", yaml_files(), ids=lambda path: os.path.relpath(path, REPO))
def test_every_reddit_backup_variable_used_is_declared(path):
    unknown = names_used(path) - set(declared()) - set(results())
    assert not unknown, "%s uses undeclared %s: declare them in roles/reddit_backup" % (path, sorted(unknown))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(COLLECTION, "playbooks", "*.yml"))),
                         ids=os.path.basename)
def test_collection_plays_start_with_the_settings_role_and_never_shadow_the_inventory(path):
    for play in load(path):
        if any(key.endswith("import_playbook") for key in play):
            assert not any(NAME.match(key) for key in play.get("vars", {})), path
            continue
        assert play["roles"][0]["role"] == "devops.reddit_backup.reddit_backup", path
        assert not any(NAME.match(key) for key in play.get("vars", {})), "%s: play vars shadow the inventory" % path


def test_the_set_fact_defaults_are_gone():
    for path in glob.glob(os.path.join(COLLECTION, "playbooks", "**", "*.yml"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        redefaulted = {name for name in re.findall(r"(reddit_backup_[a-z_]+) \| default\(", text)
                       if name in declared() and name != "reddit_backup_hosts"}  # hosts: read before any role
        assert not redefaulted, "%s gives %s a second default" % (path, sorted(redefaulted))
        copies = re.findall(r"\b(?:restore|maintenance)_(?:manage_services|become|pipeline_service|health_url)\b", text)
        assert not copies, "%s keeps copies of settings: %s" % (path, copies)


def test_the_production_remote_is_a_url():
    settings = load(os.path.join(REPO, "inventories", "production", "group_vars", "all.yml"))
    assert re.match(r"^(ssh|s3)://", settings["reddit_backup_remote"])


def test_docs_variables_md_is_current():
    module = renderer()
    with open(module.TARGET, encoding="utf-8") as handle:
        assert handle.read() == module.render(), "run python tools/render_variables.py"
