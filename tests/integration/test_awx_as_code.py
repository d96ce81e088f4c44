"""AWX as code (awx/), checked without an AWX server: every job template, survey and workflow against the awx.awx
modules' own documentation (ansible-doc -j on the collection unpacked from the pinned ansible package), every
survey variable against the settings' argument spec and the playbook it drives, and awx/apply.yml through
--syntax-check and ansible-lint's production profile. Each checker returns its findings; the mutation tests show
that a broken template is found."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.integration.runner import REPO

pytestmark = [pytest.mark.integration]

AWX = os.path.join(REPO, "awx")
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup")
SETTINGS_SPEC = os.path.join(COLLECTION, "roles", "reddit_backup", "meta", "argument_specs.yml")
BIN = os.path.dirname(sys.executable)
# The runbook's procedures the templates must cover (the site playbooks they run).
RUNBOOK = {"backup", "restore_database", "restore_config", "restore_systemd", "restore_full",
           "restore_point_in_time", "disaster_recovery", "recovery_test", "pre_maintenance"}
# AWX's survey question fields and types (awx/api/views: SurveySpec validation).
QUESTION_FIELDS = {"question_name", "question_description", "variable", "type", "required", "default", "choices",
                   "min", "max"}
QUESTION_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
PYTHON_TYPES = {"str": str, "bool": bool, "int": int, "dict": dict, "list": list, "raw": object}
REQUIRED_ASSERT = re.compile(r"\((reddit_backup_\w+) or ''\)\s*\|\s*string\s*\|\s*length\s*>\s*0")


def load(name: str) -> dict:
    with open(os.path.join(AWX, "vars", name)) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def collections_path() -> str:
    """This tree's collections and awx.awx (unpacked from the pinned ansible package; downloaded when missing)."""
    path = os.path.join(REPO, "tools", "awx_collection.py")
    spec = importlib.util.spec_from_file_location("awx_collection_tool", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return "%s:%s" % (os.path.join(REPO, "collections"), tool.ensure_awx_collection())


@pytest.fixture(scope="module")
def module_docs(collections_path) -> dict:
    """{module: its documented options}, as ansible-doc shows them."""
    shown = subprocess.run([os.path.join(BIN, "ansible-doc"), "-j", "awx.awx.job_template",
                            "awx.awx.workflow_job_template"], capture_output=True, text=True,
                           env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path))
    assert shown.returncode == 0, shown.stderr
    return {name.split(".")[-1]: entry["doc"]["options"] for name, entry in json.loads(shown.stdout).items()}


@pytest.fixture(scope="module")
def settings() -> dict:
    with open(SETTINGS_SPEC) as handle:
        return yaml.safe_load(handle)["argument_specs"]["main"]["options"]


# --- the checkers ----------------------------------------------------------------------------------------------

def option_findings(where: str, values: dict, options: dict) -> list:
    """Each key of VALUES is a documented option with the documented type and choices."""
    findings = []
    for key, value in values.items():
        if key not in options:
            findings.append("%s: %s is not an option of the module" % (where, key))
            continue
        option = options[key]
        expected = PYTHON_TYPES.get(option.get("type", "str"), object)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            findings.append("%s: %s is %r, not of type %s" % (where, key, value, option.get("type")))
        if option.get("choices") and value not in option["choices"]:
            findings.append("%s: %s=%r is not one of %s" % (where, key, value, option["choices"]))
    return findings


def question_findings(where: str, question: dict) -> list:
    findings = ["%s: %s is not a survey question field" % (where, key)
                for key in question if key not in QUESTION_FIELDS]
    for key in ("question_name", "variable", "type", "required"):
        if key not in question:
            findings.append("%s: no %s" % (where, key))
    if question.get("type") not in QUESTION_TYPES:
        findings.append("%s: type %r is not one of AWX's %s" % (where, question.get("type"), sorted(QUESTION_TYPES)))
    choices = question.get("choices")
    if question.get("type") in ("multiplechoice", "multiselect"):
        if not isinstance(choices, list) or not all(isinstance(choice, str) for choice in choices):
            findings.append("%s: choices must be a list of strings" % where)
        elif "default" in question and question["default"] not in choices:
            findings.append("%s: default %r is not a choice" % (where, question["default"]))
    elif choices is not None:
        findings.append("%s: choices on a %s question" % (where, question.get("type")))
    return findings


def template_findings(templates: list, options: dict, apply_args: dict) -> list:
    findings = []
    for template in templates:
        where = "job template %r" % template.get("name")
        findings += option_findings(where, template, options)
        findings += ["%s: awx/apply.yml does not pass %s on" % (where, key) for key in template
                     if "item.%s" % key not in str(apply_args.get(key, ""))]
        survey = template.get("survey_spec") or {}
        if template.get("survey_enabled") and not survey.get("spec"):
            findings.append("%s: survey enabled without questions" % where)
        for key in ("name", "description", "spec"):
            if survey and key not in survey:
                findings.append("%s: survey_spec has no %s" % (where, key))
        for question in survey.get("spec", []):
            findings += question_findings("%s, question %r" % (where, question.get("variable")), question)
    return findings


def workflow_findings(workflows: list, options: dict, templates: list) -> list:
    findings = []
    surveys = {template["name"]: {question["variable"]: question for question in template["survey_spec"]["spec"]}
               for template in templates}
    node_options = options["workflow_nodes"]["suboptions"]
    for workflow in workflows:
        where = "workflow %r" % workflow.get("name")
        findings += option_findings(where, workflow, options)
        identifiers = {node.get("identifier") for node in workflow.get("workflow_nodes", [])}
        for node in workflow.get("workflow_nodes", []):
            here = "%s, node %r" % (where, node.get("identifier"))
            findings += option_findings(here, node, node_options)
            target = node.get("unified_job_template", {}).get("name")
            if target not in surveys:
                findings.append("%s: runs %r, which is not a job template here" % (here, target))
                continue
            for variable, value in node.get("extra_data", {}).items():
                question = surveys[target].get(variable)
                if question is None:
                    findings.append("%s: extra_data %s is not a survey variable of %r" % (here, variable, target))
                elif question.get("choices") and value not in question["choices"]:
                    findings.append("%s: extra_data %s=%r is not a choice" % (here, variable, value))
            for kind in ("success_nodes", "failure_nodes", "always_nodes"):
                for follower in node.get("related", {}).get(kind, []):
                    if follower.get("identifier") not in identifiers:
                        findings.append("%s: %s names %r, no node of this workflow" % (here, kind, follower))
    return findings


def read_by(option: dict) -> str:
    description = option["description"] if isinstance(option["description"], list) else [option["description"]]
    return " ".join(line for line in description if "Read by:" in line)


def drives(option: dict, playbook: str) -> bool:
    """Whether the setting's "Read by:" line names the playbook (restore_* for the restores)."""
    readers = read_by(option)
    return (re.search(r"\b%s\b" % re.escape(playbook), readers) is not None or "every playbook" in readers
            or (playbook.startswith("restore_") and ("restore_*" in readers or "every restore" in readers)))


def expressions(line: str) -> list:
    """The Jinja on a line: what is inside {{ }}, and the value of a when/that/failed_when/changed_when key."""
    found = re.findall(r"{{(.*?)}}", line)
    condition = re.match(r"^\s*-?\s*(?:when|that|failed_when|changed_when|until):\s*(.+)$", line)
    if condition and "{{" not in condition.group(1):
        found.append(condition.group(1))
    return found


def uses_without_bool(variable: str) -> list:
    """Where the collection reads VARIABLE without `| bool` (an AWX survey answer "false" is a true string)."""
    places = []
    for folder in ("playbooks", "roles"):
        for base, _dirs, names in os.walk(os.path.join(COLLECTION, folder)):
            for name in names:
                if not name.endswith((".yml", ".j2")) or name == "argument_specs.yml" or base.endswith("defaults"):
                    continue
                with open(os.path.join(base, name)) as handle:
                    for number, line in enumerate(handle, 1):
                        if any(re.search(r"\b%s\b(?!\s*\|\s*bool)" % variable, code) for code in expressions(line)):
                            places.append("%s:%d" % (os.path.relpath(os.path.join(base, name), COLLECTION), number))
    return places


def required_variables(playbook: str) -> set:
    """The settings the collection's PLAYBOOK asserts are set (`(reddit_backup_X or '') | string | length > 0`)."""
    texts = []
    path = os.path.join(COLLECTION, "playbooks", playbook + ".yml")
    with open(path) as handle:
        texts.append(handle.read())
    for included in re.findall(r"tasks/[a-z_]+\.yml", texts[0]):
        with open(os.path.join(COLLECTION, "playbooks", included)) as handle:
            texts.append(handle.read())
    return {name for text in texts for name in REQUIRED_ASSERT.findall(text)}


def survey_findings(templates: list, settings: dict) -> list:
    findings = []
    for template in templates:
        playbook = re.fullmatch(r"playbooks/([a-z_]+)\.yml", template["playbook"]).group(1)
        where = "job template %r" % template["name"]
        if not os.path.isfile(os.path.join(REPO, template["playbook"])):
            findings.append("%s: %s does not exist" % (where, template["playbook"]))
        questions = template.get("survey_spec", {}).get("spec", [])
        for question in questions:
            findings += variable_findings("%s, question %r" % (where, question["variable"]), question, playbook,
                                          settings)
        asked = {question["variable"] for question in questions if question.get("required")}
        given = set(template.get("extra_vars", {}))
        for variable in sorted(required_variables(playbook) - asked - given):
            findings.append("%s: %s requires %s, neither a required question nor in extra_vars"
                            % (where, playbook, variable))
    return findings


def variable_findings(where: str, question: dict, playbook: str, settings: dict) -> list:
    variable = question["variable"]
    option = settings.get(variable)
    if option is None:
        return ["%s: %s is not a declared setting" % (where, variable)]
    findings = []
    if not drives(option, playbook):
        findings.append("%s: %s is not read by %s (%s)" % (where, variable, playbook, read_by(option)))
    kind, default = option.get("type", "str"), option.get("default")
    if kind == "bool":
        if question["type"] != "multiplechoice" or sorted(question.get("choices", [])) != ["false", "true"]:
            findings.append("%s: a bool setting is a multiplechoice of \"true\" and \"false\"" % where)
        if question.get("default") != str(bool(default)).lower():
            findings.append("%s: default %r, the setting's is %r" % (where, question.get("default"), default))
        findings += ["%s: read without | bool at %s" % (where, place) for place in uses_without_bool(variable)]
    elif kind == "int":
        if question["type"] != "integer" or question.get("default") != default:
            findings.append("%s: an int setting is an integer question with its default %r" % (where, default))
    elif kind in ("str", "path"):
        if option.get("choices"):
            if question["type"] != "multiplechoice" or not set(question.get("choices", [])) <= set(option["choices"]):
                findings.append("%s: choices %s are not among the setting's %s"
                                % (where, question.get("choices"), option["choices"]))
        elif question["type"] not in ("text", "textarea", "password", "multiplechoice"):
            findings.append("%s: a %s setting is asked as %s" % (where, kind, question["type"]))
        if "default" in question and question["default"] != ("" if default is None else default):
            findings.append("%s: default %r, the setting's is %r" % (where, question["default"], default))
    else:
        findings.append("%s: a %s setting cannot be a survey question" % (where, kind))
    return findings


def apply_task_args(module: str) -> dict:
    with open(os.path.join(AWX, "apply.yml")) as handle:
        plays = yaml.safe_load(handle)
    for task in plays[0]["tasks"]:
        if "awx.awx.%s" % module in task:
            return task["awx.awx.%s" % module]
    raise AssertionError("awx/apply.yml has no awx.awx.%s task" % module)


# --- (a) the awx.awx modules' documentation ---------------------------------------------------------------------

def test_job_templates_and_surveys_match_the_job_template_module(module_docs):
    options = module_docs["job_template"]
    apply_args = apply_task_args("job_template")
    assert sorted(set(apply_args) - set(options)) == []
    assert template_findings(load("job_templates.yml")["awx_job_templates"], options, apply_args) == []


def test_workflows_match_the_workflow_module_and_name_real_templates(module_docs):
    assert set(apply_task_args("workflow_job_template")) <= set(module_docs["workflow_job_template"])
    templates = load("job_templates.yml")["awx_job_templates"]
    assert workflow_findings(load("workflows.yml")["awx_workflow_job_templates"],
                             module_docs["workflow_job_template"], templates) == []


# --- (b) the settings' argument spec and the playbooks ------------------------------------------------------------

def test_every_runbook_procedure_has_a_template():
    templates = load("job_templates.yml")["awx_job_templates"]
    covered = {re.fullmatch(r"playbooks/([a-z_]+)\.yml", template["playbook"]).group(1) for template in templates}
    assert RUNBOOK <= covered, RUNBOOK - covered
    assert len({template["name"] for template in templates}) == len(templates)


def test_survey_variables_are_settings_of_the_playbooks_they_drive(settings):
    assert survey_findings(load("job_templates.yml")["awx_job_templates"], settings) == []


def test_point_in_time_asks_for_its_moment():
    assert required_variables("restore_point_in_time") == {"reddit_backup_restore_before"}


# --- the checkers catch what they are for ---------------------------------------------------------------------------

def mutated(change) -> list:
    templates = copy.deepcopy(load("job_templates.yml")["awx_job_templates"])
    change({template["name"]: template for template in templates})
    return templates


@pytest.mark.parametrize("change, finding", [
    (lambda t: t["reddit-backup backup"].update(ask_limit_on_lunch=True), "ask_limit_on_lunch is not an option"),
    (lambda t: t["reddit-backup backup"].update(job_type="dry-run"), "job_type='dry-run' is not one of"),
    (lambda t: t["reddit-backup backup"].update(forks="10"), "forks is '10', not of type int"),
    (lambda t: t["reddit-backup backup"].update(job_tags="x"), "awx/apply.yml does not pass job_tags on"),
    (lambda t: t["reddit-backup backup"]["survey_spec"]["spec"][0].update(type="choice"), "is not one of AWX's"),
    (lambda t: t["reddit-backup backup"]["survey_spec"]["spec"][0].update(default="weekly"), "is not a choice"),
])
def test_the_module_checks_catch_a_broken_template(module_docs, change, finding):
    findings = template_findings(mutated(change), module_docs["job_template"], apply_task_args("job_template"))
    assert any(finding in line for line in findings), findings


@pytest.mark.parametrize("change, finding", [
    (lambda t: t["reddit-backup backup"]["survey_spec"]["spec"][0].update(variable="reddit_backup_kind"),
     "reddit_backup_kind is not a declared setting"),
    (lambda t: t["reddit-backup backup"]["survey_spec"]["spec"][0].update(choices=["full", "differential"]),
     "are not among the setting's"),
    (lambda t: t["reddit-backup recovery test"]["survey_spec"]["spec"][0].update(
        variable="reddit_backup_restore_force"),
     "is not read by recovery_test"),
    (lambda t: t["reddit-backup restore full"]["survey_spec"]["spec"][3].update(default="true"),
     "default 'true', the setting's is False"),
    (lambda t: t["reddit-backup pre-maintenance"]["survey_spec"]["spec"][2].update(type="text"),
     "an int setting is an integer question"),
    (lambda t: t["reddit-backup point in time"]["survey_spec"]["spec"][0].update(required=False),
     "restore_point_in_time requires reddit_backup_restore_before"),
])
def test_the_settings_checks_catch_a_broken_survey(settings, change, finding):
    findings = survey_findings(mutated(change), settings)
    assert any(finding in line for line in findings), findings


def test_a_bool_read_without_the_bool_filter_is_found(tmp_path, monkeypatch):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "x.yml").write_text("- when: reddit_backup_restore_force\n"
                                     "- when: reddit_backup_restore_force | bool\n")
    monkeypatch.setattr(sys.modules[__name__], "COLLECTION", str(tmp_path))
    assert uses_without_bool("reddit_backup_restore_force") == ["playbooks/x.yml:1"]


def test_a_workflow_node_must_run_a_template_here(module_docs):
    templates = load("job_templates.yml")["awx_job_templates"]
    workflows = copy.deepcopy(load("workflows.yml")["awx_workflow_job_templates"])
    workflows[0]["workflow_nodes"][0]["unified_job_template"]["name"] = "reddit-backup backups"
    workflows[0]["workflow_nodes"][1]["related"] = {"success_nodes": [{"identifier": "nowhere"}]}
    findings = workflow_findings(workflows, module_docs["workflow_job_template"], templates)
    assert any("'reddit-backup backups', which is not a job template" in line for line in findings), findings
    assert any("success_nodes names {'identifier': 'nowhere'}" in line for line in findings), findings


# --- (c) the apply playbook -------------------------------------------------------------------------------------

def test_apply_playbook_passes_syntax_check_and_lint(collections_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path)
    checked = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", "awx/apply.yml"], cwd=REPO,
                             capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    linted = subprocess.run([os.path.join(BIN, "ansible-lint"), "--profile", "production", "awx/"], cwd=REPO,
                            capture_output=True, text=True, env=env, timeout=600)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_apply_playbook_refuses_to_run_without_inventory_and_project(collections_path, tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_LOCAL_TEMP=str(tmp_path))
    ran = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "awx/apply.yml"], cwd=REPO,
                         capture_output=True, text=True, env=env)
    assert ran.returncode != 0
    assert "Name the AWX inventory and project the templates run" in ran.stdout, ran.stdout
