"""Comprehensive verification of a full backup: backup_verify through ansible-playbook (plus the engine called
directly), against the guide's manual check of its gzip archive and against the floor the issue measures it by:
decompressing the zstd archive to /dev/null plus `PRAGMA integrity_check` of its database."""

from __future__ import annotations

import os
import shlex

import _fixtures
import _profile
from _ansible import engine_step, last_json_line, minimal_result, playbook_step, write_playbook
from _files import warm_page_cache
from _report import command_lines, fmt, markdown_table, measured_cells, measured_headers, step_lines
from _stats import ratio, target
from _steps import Step
from backup import find_databases

NAME = "verify"
TARGETS = {"time_vs_baseline": 1.5, "issue_16_time_vs_baseline": 1.0}
# The engine's floor: its pass over the archive (decompress, tar walk, sha256), then the check of the written copy.
PROFILE_STAGES = [["reader pass + sha256"], ["integrity_check"]]


def _integrity_lines(databases: list) -> list:
    return ["sqlite3 %s 'PRAGMA integrity_check;'" % shlex.quote(path) for path in databases]


def _all_ok(stdout: str, count: int, what: str) -> None:
    """`PRAGMA integrity_check` printed ``ok`` once per database, and nothing else."""
    lines = stdout.split()
    if lines != ["ok"] * count:
        raise RuntimeError("%s: integrity_check did not print ok for every database: %s" % (what, stdout[-500:]))


class GuideMethod:
    """The guide's manual check of a backup ("Backup Verification Fails": `tar -tzf ... > /dev/null`; the database
    extracted with `tar -xzf ... -C DIR data/reddit_sentiment.db`, as in "Database Recovery from Full Backup", and
    `PRAGMA integrity_check` on it), then its cleanup (`rm`)."""

    key = "guide"
    title = "guide manual: tar -tzf + tar -xzf db + integrity_check"

    def __init__(self, fixture: dict, databases: list) -> None:
        self.archive = fixture["archive"]
        self.databases = databases

    def steps(self, out: str) -> list:
        stage = os.path.join(out, "stage")
        archive = shlex.quote(self.archive)
        extract = "mkdir -p %s\ntar -xzf %s -C %s %s" % (shlex.quote(stage), archive, shlex.quote(stage),
                                                         " ".join(shlex.quote(db) for db in self.databases))
        check = _integrity_lines([os.path.join(stage, db) for db in self.databases])
        return [Step("list", shell="tar -tzf %s > /dev/null" % archive),
                Step("extract", shell=extract),
                Step("integrity_check", shell="\n".join(check + ["rm -rf %s" % shlex.quote(stage)]))]

    def result(self, out: str, runs: list) -> dict:
        _all_ok(runs[-1].stdout, len(self.databases), self.key)
        return {"archive": self.archive, "archive_bytes": os.path.getsize(self.archive)}


class BaselineMethod:
    """The issue's yardstick: the zstd archive decompressed to /dev/null, plus `PRAGMA integrity_check` of its
    database (extracted once beforehand, untimed: no extraction is charged to this row)."""

    key = "baseline"
    title = "baseline: zstd -dc > /dev/null + integrity_check"

    def __init__(self, fixture: dict, extracted: list) -> None:
        self.archive = fixture["archive"]
        self.extracted = extracted

    def steps(self, out: str) -> list:
        return [Step("decompress", shell="zstd -dc %s > /dev/null" % shlex.quote(self.archive)),
                Step("integrity_check", shell="\n".join(_integrity_lines(self.extracted)))]

    def result(self, out: str, runs: list) -> dict:
        _all_ok(runs[-1].stdout, len(self.extracted), self.key)
        return {"archive": self.archive, "archive_bytes": os.path.getsize(self.archive)}


def _verify_result(data: dict, what: str) -> dict:
    if data.get("status") != "valid":
        raise RuntimeError("%s: the archive was not found valid: %s" % (what, data.get("reason")))
    return {"archive": data["archive"], "archive_bytes": os.path.getsize(data["archive"]),
            "module_duration": data["duration"], "members": data["members"], "checks": len(data["checks"]),
            "status": data["status"]}


class AnsibleMethod:
    """A one-task playbook: devops.reddit_backup.backup_verify, level comprehensive, on localhost."""

    key = "ansible"
    title = "backup_verify comprehensive via ansible-playbook"

    def __init__(self, workdir: str, collections: str, fixture: dict) -> None:
        self.workdir = workdir
        self.collections = collections
        self.archive = fixture["archive"]
        self.playbook = os.path.join(workdir, "verify.yml")

    def steps(self, out: str) -> list:
        write_playbook(self.playbook, "Comprehensive verify", "backup_verify",
                       {"archive": self.archive, "level": "comprehensive"}, register="verdict")
        return [playbook_step("ansible-playbook", self.workdir, self.collections, self.playbook, "backup_verify")]

    def result(self, out: str, runs: list) -> dict:
        return _verify_result(minimal_result(runs[-1].stdout), self.key)


class AnsibleFloorMethod:
    """What any one-task playbook costs here whatever its module does: ansible.builtin.ping on localhost, run the
    same way (controller start, inventory, AnsiballZ payload, the targets' python). Diagnostic: the share of the
    ansible rows that no engine change can remove."""

    key = "ansible_floor"
    title = "ansible-playbook floor: ansible.builtin.ping (diagnostic)"

    def __init__(self, workdir: str, collections: str) -> None:
        self.workdir = workdir
        self.collections = collections
        self.playbook = os.path.join(workdir, "floor.yml")

    def steps(self, out: str) -> list:
        with open(self.playbook, "w") as handle:
            handle.write("- name: Ansible floor\n  hosts: localhost\n  connection: local\n  gather_facts: false\n"
                         "  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n")
        return [playbook_step("ansible-playbook", self.workdir, self.collections, self.playbook, "ping")]

    def result(self, out: str, runs: list) -> dict:
        if minimal_result(runs[-1].stdout).get("ping") != "pong":
            raise RuntimeError("ansible_floor: ping did not answer pong")
        return {}


ENGINE_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
print(json.dumps(verify_archive(sys.argv[2], "comprehensive")))
"""


class EngineMethod:
    """The engine alone: ``verify_archive(archive, "comprehensive")`` in the targets' python (diagnostic)."""

    key = "engine"
    title = "engine verify_archive() direct (diagnostic)"

    def __init__(self, collections: str, fixture: dict) -> None:
        self.collections = collections
        self.archive = fixture["archive"]

    def steps(self, out: str) -> list:
        return [engine_step("verify_archive", ENGINE_CALL, self.collections, [self.archive], "verify_archive")]

    def result(self, out: str, runs: list) -> dict:
        return _verify_result(last_json_line(runs[-1].stdout), self.key)


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    keys = ("guide", "baseline", "ansible", "engine", "ansible_floor")
    wanted = [key for key in keys if not only_methods or key in only_methods]
    if not wanted:
        return {"skipped": "no method of this family in --methods"}
    databases = find_databases(app_root)
    guide = _fixtures.guide_archive(workdir, app_root, databases) if "guide" in wanted else None
    module = _fixtures.module_backup(workdir, app_root, options.collections) \
        if set(wanted) - {"guide", "ansible_floor"} else None
    chosen = []
    if guide:
        chosen.append(GuideMethod(guide, databases))
    if module:
        if "baseline" in wanted:
            extracted = [_fixtures.extracted_database(workdir, module["archive"], db) for db in databases]
            warm_page_cache(*extracted)
            chosen.append(BaselineMethod(module, extracted))
        if "ansible" in wanted:
            chosen.append(AnsibleMethod(workdir, options.collections, module))
        if "engine" in wanted:
            chosen.append(EngineMethod(options.collections, module))
    if "ansible_floor" in wanted:
        chosen.append(AnsibleFloorMethod(workdir, options.collections))
    result, records = _fixtures.measure_on(NAME, chosen, options, workdir, databases, guide, module,
                                           artifact_key="archive_bytes")
    result["ratios"], result["targets"] = _targets(records)
    if module:
        extracted = _fixtures.extracted_database(workdir, module["archive"], databases[0])
        profile = _profile.measure(NAME, [module["archive"], extracted], workdir, options)
        profile["lines"] = profile_lines(profile, {key: record["summary"] for key, record in records.items()})
        result["measured"] = {"profile": profile}
    return result


def profile_lines(profile: dict, summaries: dict) -> list:
    """The profile against issue 16's 1.0x of the baseline, for the ansible row and the engine row."""
    baseline = (summaries.get("baseline") or {}).get("median_s")
    limit = TARGETS["issue_16_time_vs_baseline"]
    return _profile.family_lines(profile, summaries, PROFILE_STAGES, ("ansible", limit, baseline, "the baseline"),
                                 ("engine", limit, baseline, "the baseline"))


def _targets(records: dict) -> tuple:
    summaries = {key: record["summary"] for key, record in records.items()}
    baseline = summaries.get("baseline", {}).get("median_s")
    guide = summaries.get("guide", {}).get("median_s")
    baseline_cpu = summaries.get("baseline", {}).get("cpu_s")
    ratios = {key: {"time_vs_baseline": ratio(summary["median_s"], baseline),
                    "cpu_vs_baseline": ratio(summary["cpu_s"], baseline_cpu),
                    "speedup_vs_guide": ratio(guide, summary["median_s"])} if key != "ansible_floor" else
              {"time_vs_baseline": None, "cpu_vs_baseline": None, "speedup_vs_guide": None}
              for key, summary in summaries.items()}
    targets = []
    limit = TARGETS["time_vs_baseline"]
    if baseline and "ansible" in summaries:
        value = ratios["ansible"]["time_vs_baseline"]
        targets.append(target("ansible row no slower than %.1fx the baseline (zstd -dc > /dev/null + "
                              "integrity_check)" % limit, value, value <= limit, "x"))
    issue_limit = TARGETS["issue_16_time_vs_baseline"]
    for key in ("ansible", "engine"):
        value = ratios.get(key, {}).get("time_vs_baseline")
        if value is not None:
            targets.append(target("%s row at most %.1fx the baseline (issue 16)" % (key, issue_limit), value,
                                  value <= issue_limit, "x", diagnostic=key == "engine"))
    floor = summaries.get("ansible_floor", {}).get("median_s")
    if baseline and floor and "ansible" in summaries:
        value = ratio(summaries["ansible"]["median_s"] - floor, baseline)
        targets.append(target("(diagnostic) ansible row minus the ansible-playbook floor (%.2f s): no slower than "
                              "%.1fx the baseline" % (floor, limit), value, value <= limit, "x", diagnostic=True))
    if baseline:
        for key, text in (("ansible", "module's own duration"), ("engine", "engine called directly")):
            duration = summaries.get(key, {}).get("module_duration_median_s")
            if duration:
                value = ratio(duration, baseline)
                targets.append(target("(diagnostic) %s: no slower than %.1fx the baseline" % (text, limit), value,
                                      value <= limit, "x", diagnostic=True))
    return ratios, targets


def _floor_line(result: dict):
    """How much of the 1.5x budget Ansible leaves to the module, from the floor row."""
    summaries = {record["key"]: record["summary"] for record in result["methods"]}
    if not {"ansible_floor", "baseline", "ansible"} <= set(summaries):
        return None
    floor, baseline = summaries["ansible_floor"]["median_s"], summaries["baseline"]["median_s"]
    budget = TARGETS["time_vs_baseline"] * baseline
    return ("- budget: %.1fx the baseline is %.2f s; the ansible-playbook floor takes %.2f s of it, leaving %.2f s "
            "for the module (its own duration: %s s)" % (
                TARGETS["time_vs_baseline"], budget, floor, budget - floor,
                fmt(summaries["ansible"]["module_duration_median_s"], "%.2f")))


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Comprehensive verify: skipped (%s)" % result["skipped"]
    headers = measured_headers("archive MB") + ["time / baseline", "CPU / baseline", "x faster than guide"]
    rows = []
    for record in result["methods"]:
        summary = record["summary"]
        ratios = result["ratios"][record["key"]]
        rows.append(measured_cells(record, fmt(summary["archive_mb"], "%.1f"))
                    + [fmt(ratios["time_vs_baseline"], "%.2fx"), fmt(ratios.get("cpu_vs_baseline"), "%.2fx"),
                       fmt(ratios["speedup_vs_guide"], "%.2fx")])
    lines = ["## Comprehensive verify of a full backup (%s)" % ", ".join(result["databases"]), "",
             markdown_table(headers, rows), ""]
    lines += step_lines(result["methods"])
    lines.append("")
    lines += ["- " + found["display"] for found in result["targets"]]
    for record in result["methods"]:
        last = record["runs"][-1]
        if "checks" in last:
            lines.append("- %s: verdict %s, %d checks, %d members" % (record["key"], last["status"], last["checks"],
                                                                      last["members"]))
    floor_line = _floor_line(result)
    if floor_line:
        lines.append(floor_line)
    lines += _profile.rendered(result)
    fixtures = result["fixtures"]
    made = ", ".join("%s %.1f MB (made in %.0f s, untimed)" % (name, fixture["archive_bytes"] / 1048576.0,
                                                               fixture["seconds"])
                     for name, fixture in sorted(fixtures.items()) if fixture)
    lines.append("- archives verified: %s" % made)
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
