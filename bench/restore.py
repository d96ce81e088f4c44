"""The database restore of the guide's database-corruption scenario (its RTO): backup_restore scope database
through ansible-playbook (plus the engine called directly), against the guide's manual restore of the database
from its gzip full backup."""

from __future__ import annotations

import os
import shlex
import shutil
import time

import _fixtures
import _peers
import _profile
from _ansible import engine_step, last_json_line, minimal_result, playbook_step, write_playbook
from _files import fsync_tree, sha256_file, warm_page_cache
from _report import command_lines, fmt, markdown_table, measured_cells, measured_headers, step_lines
from _stats import ratio, target
from _steps import Step
from backup import find_databases

NAME = "restore"
TARGETS = {"time_vs_guide": 0.5, "ansible_vs_fastest_peer": 0.7, "engine_vs_fastest_peer": 0.4}
# The engine's floor: its pass over the archive beside the write of the staged database and its syncfs, then the
# quick_check of the staged copy (a restore whose bytes hash to the backup's snapshot runs no full check).
PROFILE_STAGES = [["reader pass + sha256", "write + syncfs"], ["quick_check"]]
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
CORRUPT_BYTES = 4096


def prepare_damaged_app(app_root: str, dest: str, databases: list) -> dict:
    """A copy of the app at ``dest`` whose databases are damaged (one page in the middle overwritten, the size
    unchanged: what `PRAGMA integrity_check` reports as corruption), flushed to disk; then everything dirty on
    the machine is flushed too (sync), so no run pays for the writeback of what came before it. Untimed."""
    started = time.monotonic()
    skip = {os.path.join(app_root, db) + suffix for db in databases for suffix in ("",) + SIDE_SUFFIXES}

    def ignore(directory, names):
        return [name for name in names if os.path.join(directory, name) in skip]

    shutil.copytree(app_root, dest, symlinks=True, ignore=ignore)
    for db in databases:
        target_path = os.path.join(dest, db)
        shutil.copyfile(os.path.join(app_root, db), target_path)
        shutil.copymode(os.path.join(app_root, db), target_path)
        size = os.path.getsize(target_path)
        with open(target_path, "r+b") as handle:
            handle.seek((size // 2) // CORRUPT_BYTES * CORRUPT_BYTES)
            handle.write(b"\x5a" * CORRUPT_BYTES)
    fsync_tree(dest)
    copied = time.monotonic()
    os.sync()
    return {"copy_s": round(copied - started, 2), "sync_s": round(time.monotonic() - copied, 2)}


def _check_restored(dest: str, expected: dict, what: str) -> bool:
    """The databases in ``dest`` are the backup's snapshot, byte for byte (untimed, after the run)."""
    for db, sha256 in expected.items():
        found = sha256_file(os.path.join(dest, db))
        if found != sha256:
            raise RuntimeError("%s: %s after the restore is not the backup's snapshot (sha256 %s, expected %s)"
                               % (what, db, found, sha256))
    return True


class _Method:
    def __init__(self, app_root: str, databases: list, fixture: dict) -> None:
        self.app_root = app_root
        self.databases = databases
        self.fixture = fixture
        self.archive = fixture["archive"]

    def prepare(self, out: str) -> dict:
        return prepare_damaged_app(self.app_root, os.path.join(out, "app"), self.databases)


class GuideMethod(_Method):
    """The guide's "Database Recovery from Full Backup": `tar -xzf` the database into a scratch folder,
    `PRAGMA integrity_check` on it (scenario 1's check), `cp` it over the damaged one, `chown`, `chmod 644`. No
    service to stop here; no fsync (the guide has none: its cp returns before the data is on disk)."""

    key = "guide"
    title = "guide manual: tar -xzf db + integrity_check + cp"

    def steps(self, out: str) -> list:
        scratch = os.path.join(out, "tmp")
        dest = os.path.join(out, "app")
        extract = "mkdir -p %s\ntar -xzf %s -C %s %s" % (
            shlex.quote(scratch), shlex.quote(self.archive), shlex.quote(scratch),
            " ".join(shlex.quote(db) for db in self.databases))
        return [Step("extract", shell=extract)] + _check_and_replace_steps(scratch, dest, self.databases)

    def result(self, out: str, runs: list) -> dict:
        return _checked_and_replaced(self, out, runs)


def _check_and_replace_steps(scratch: str, dest: str, databases: list) -> list:
    """The guide's steps after the extraction: `PRAGMA integrity_check` of SCRATCH/DB, then `cp` it over the
    damaged one, `chown`, `chmod 644`."""
    check = ["sqlite3 %s 'PRAGMA integrity_check;'" % shlex.quote(os.path.join(scratch, db)) for db in databases]
    replace = []
    for db in databases:
        live = shlex.quote(os.path.join(dest, db))
        replace += ["cp %s %s" % (shlex.quote(os.path.join(scratch, db)),
                                  shlex.quote(os.path.dirname(os.path.join(dest, db)) + "/")),
                    'chown "$(id -u):$(id -g)" %s' % live, "chmod 644 %s" % live]
    return [Step("integrity_check", shell="\n".join(check)), Step("replace", shell="\n".join(replace))]


def _checked_and_replaced(method: "_Method", out: str, runs: list) -> dict:
    """The result of a method ending in _check_and_replace_steps (its check said ok; the bytes are the backup's)."""
    if runs[-2].stdout.split() != ["ok"] * len(method.databases):
        raise RuntimeError("%s: integrity_check of the extracted database: %s" % (method.key, runs[-2].stdout[-500:]))
    started = time.monotonic()
    os.sync()  # untimed: what the cp left unwritten
    sync_after = round(time.monotonic() - started, 2)
    _check_restored(os.path.join(out, "app"), method.fixture["databases"], method.key)
    return {"archive": method.archive, "restored_bytes": _db_bytes(os.path.join(out, "app"), method.databases),
            "sync_after_s": sync_after, "restored_ok": True}


class PeerMethod(_Method):
    """restic or borg (bench/_peers.py): the database out of the repository's latest backup into a scratch
    folder, then the guide's `integrity_check` and `cp` (what their users do after a restore)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.repository = self.fixture["repository"]
        self.key = self.repository.tool
        self.title = "%s: restore db + integrity_check + cp" % self.key

    def steps(self, out: str) -> list:
        scratch = os.path.join(out, "tmp")
        stage = self.fixture["stage"]
        restore_lines = [self.repository.restore_shell(scratch, os.path.join(stage, db), "full")
                         for db in self.databases]
        return [Step(self.key, shell="\n".join(restore_lines), env=self.repository.env())] \
            + _check_and_replace_steps(scratch + stage, os.path.join(out, "app"), self.databases)

    def result(self, out: str, runs: list) -> dict:
        return _checked_and_replaced(self, out, runs)


def _db_bytes(dest: str, databases: list) -> int:
    return sum(os.path.getsize(os.path.join(dest, db)) for db in databases)


def _restore_result(data: dict, out: str, method: "_Method") -> dict:
    if not data.get("restored") or sorted(data.get("databases") or []) != sorted(method.databases):
        raise RuntimeError("%s: the restore replaced nothing (restored %s, databases %s)"
                           % (method.key, data.get("restored"), data.get("databases")))
    if data["verification"]["status"] != "valid":
        raise RuntimeError("%s: verification %s" % (method.key, data["verification"]["reason"]))
    _check_restored(os.path.join(out, "app"), method.fixture["databases"], method.key)
    return {"archive": data["archive"], "restored_bytes": _db_bytes(os.path.join(out, "app"), method.databases),
            "module_duration": data["duration"], "restored": data["restored"],
            "safety_copies": data["safety_copies"], "verification": data["verification"]["level"],
            "staged_bytes": data["bytes"], "restored_ok": True}


class AnsibleMethod(_Method):
    """A one-task playbook: devops.reddit_backup.backup_restore scope database into the app root on localhost
    (nothing holds the database open, so force stays false; defaults otherwise: verify_first, safety_copy)."""

    key = "ansible"
    title = "backup_restore scope=database via ansible-playbook"

    def __init__(self, workdir: str, collections: str, *args) -> None:
        super().__init__(*args)
        self.workdir = workdir
        self.collections = collections
        self.playbook = os.path.join(workdir, "restore.yml")

    def steps(self, out: str) -> list:
        write_playbook(self.playbook, "Database restore", "backup_restore",
                       {"archive": self.archive, "dest": os.path.join(out, "app"), "scope": "database",
                        "force": False}, register="restored")
        return [playbook_step("ansible-playbook", self.workdir, self.collections, self.playbook, "backup_restore")]

    def result(self, out: str, runs: list) -> dict:
        return _restore_result(minimal_result(runs[-1].stdout), out, self)


ENGINE_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
print(json.dumps(restore(RestoreRequest(dest=sys.argv[2], archive=sys.argv[3], scope="database",
                                        trusted_signing_keys=sys.argv[4:] or None))))
"""


class EngineMethod(_Method):
    """The engine alone: ``restore(RestoreRequest(dest, archive, scope="database"))`` (diagnostic)."""

    key = "engine"
    title = "engine restore() direct (diagnostic)"

    def __init__(self, collections: str, *args) -> None:
        super().__init__(*args)
        self.collections = collections

    def steps(self, out: str) -> list:
        return [engine_step("restore", ENGINE_CALL, self.collections, [os.path.join(out, "app"), self.archive],
                            "RestoreRequest")]

    def result(self, out: str, runs: list) -> dict:
        return _restore_result(last_json_line(runs[-1].stdout), out, self)


class SignedEngineMethod(EngineMethod):
    """The engine restoring the same backup signed (``reddit_backup_signing``), its key trusted
    (``reddit_backup_trusted_signing_keys``): the catalog entry is the signer's, so the check that passed at backup
    time on these exact bytes is not run again (diagnostic: what signing saves)."""

    key = "engine_signed"
    title = "engine restore() of a signed backup, its key trusted (diagnostic)"

    def steps(self, out: str) -> list:
        return [engine_step("restore", ENGINE_CALL, self.collections,
                            [os.path.join(out, "app"), self.archive, self.fixture["public_key"]], "RestoreRequest")]

    def result(self, out: str, runs: list) -> dict:
        data = last_json_line(runs[-1].stdout)
        if not data.get("authenticated"):  # else this row would time an unsigned restore under another name
            raise RuntimeError("the signed restore was not authenticated: %s" % data.get("authenticity"))
        return _restore_result(data, out, self)


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    keys = ("guide", "ansible", "engine", "engine_signed") + _peers.TOOLS
    wanted = [key for key in keys if not only_methods or key in only_methods]
    if not wanted:
        return {"skipped": "no method of this family in --methods"}
    databases = find_databases(app_root)
    guide = _fixtures.guide_archive(workdir, app_root, databases) if "guide" in wanted else None
    module = _fixtures.module_backup(workdir, app_root, options.collections) if set(wanted) - {"guide"} else None
    chosen = []
    if guide:
        chosen.append(GuideMethod(app_root, databases, guide))
    if "ansible" in wanted:
        chosen.append(AnsibleMethod(workdir, options.collections, app_root, databases, module))
    if "engine" in wanted:
        chosen.append(EngineMethod(options.collections, app_root, databases, module))
    if "engine_signed" in wanted:
        signed = _fixtures.module_backup(workdir, app_root, options.collections, signed=True)
        chosen.append(SignedEngineMethod(options.collections, app_root, databases, signed))
    peers = [PeerMethod(app_root, databases, _fixtures.peer_repository(workdir, app_root, databases, tool))
             for tool in _peers.TOOLS if tool in wanted]
    warm_page_cache(*[peer.fixture["archive"] for peer in peers])
    chosen += peers
    result, records = _fixtures.measure_on(NAME, chosen, options, workdir, databases, guide, module)
    result["ratios"], result["targets"] = _targets(records)
    if module:
        extracted = _fixtures.extracted_database(workdir, module["archive"], databases[0])
        profile = _profile.measure(NAME, [module["archive"], extracted, app_root, databases[0]], workdir, options)
        profile["lines"] = profile_lines(profile, {key: record["summary"] for key, record in records.items()})
        result["measured"] = {"profile": profile}
    return result


def profile_lines(profile: dict, summaries: dict) -> list:
    """The profile against issue 16's targets of this family, both against the faster of restic and borg."""
    fastest = min((summaries[tool]["median_s"] for tool in _peers.TOOLS if tool in summaries), default=None)
    return _profile.family_lines(profile, summaries, PROFILE_STAGES,
                                 ("ansible", TARGETS["ansible_vs_fastest_peer"], fastest, "the fastest peer"),
                                 ("engine", TARGETS["engine_vs_fastest_peer"], fastest, "the fastest peer"))


def _targets(records: dict) -> tuple:
    summaries = {key: record["summary"] for key, record in records.items()}
    guide = summaries.get("guide", {}).get("median_s")
    guide_cpu = summaries.get("guide", {}).get("cpu_s")
    ratios = {key: {"time_vs_guide": ratio(summary["median_s"], guide),
                    "cpu_vs_guide": ratio(summary["cpu_s"], guide_cpu),
                    "time_vs_fastest_peer": _peers.versus_fastest(summaries, summary["median_s"])}
              for key, summary in summaries.items()}
    targets = []
    limit = TARGETS["time_vs_guide"]
    if guide and "ansible" in summaries:
        value = ratios["ansible"]["time_vs_guide"]
        targets.append(target("ansible row at most %.1fx the guide's manual restore" % limit, value,
                              value <= limit, "x"))
    if guide:
        for key, text in (("ansible", "module's own duration"), ("engine", "engine called directly")):
            duration = summaries.get(key, {}).get("module_duration_median_s")
            if duration:
                value = ratio(duration, guide)
                targets.append(target("(diagnostic) %s: at most %.1fx the guide's manual restore" % (text, limit),
                                      value, value <= limit, "x", diagnostic=True))
    for key, limit_key in (("ansible", "ansible"), ("engine", "engine"), ("engine_signed", "engine")):
        value = ratios.get(key, {}).get("time_vs_fastest_peer")
        if value is not None:
            limit = TARGETS[limit_key + "_vs_fastest_peer"]
            targets.append(target("%s row at most %.1fx the fastest of restic and borg" % (key, limit), value,
                                  value <= limit, "x", diagnostic=key != "ansible"))
    return ratios, targets


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Database restore: skipped (%s)" % result["skipped"]
    headers = measured_headers("database MB") + ["time / guide", "CPU / guide", "time / fastest peer"]
    rows = []
    for record in result["methods"]:
        restored = record["runs"][-1]["restored_bytes"] / 1048576.0
        rows.append(measured_cells(record, "%.1f" % restored)
                    + [fmt(result["ratios"][record["key"]]["time_vs_guide"], "%.2fx"),
                       fmt(result["ratios"][record["key"]].get("cpu_vs_guide"), "%.2fx"),
                       fmt(result["ratios"][record["key"]].get("time_vs_fastest_peer"), "%.2fx")])
    lines = ["## Database restore: the database-corruption scenario (%s)" % ", ".join(result["databases"]), "",
             markdown_table(headers, rows), ""]
    lines += step_lines(result["methods"])
    lines.append("")
    lines += ["- " + found["display"] for found in result["targets"]]
    for record in result["methods"]:
        runs = record["runs"]
        prepared = runs[-1].get("prepared") or {}
        notes = ["restored database is the backup's snapshot byte for byte: %s"
                 % ("yes" if all(run.get("restored_ok") for run in runs) else "NO")]
        if "sync_after_s" in runs[-1]:
            notes.append("sync right after it (untimed, the writeback its cp left pending) %.2f s median"
                         % sorted(run["sync_after_s"] for run in runs)[len(runs) // 2])
        if "verification" in runs[-1]:
            notes.append("verified while staging (%s); safety copy %s" % (
                runs[-1]["verification"], ", ".join(os.path.basename(path) for path in runs[-1]["safety_copies"])
                or "none"))
        notes.append("damaged copy prepared untimed (copy %.1f s, sync %.1f s)" % (prepared.get("copy_s", 0),
                                                                                   prepared.get("sync_s", 0)))
        lines.append("- %s: %s" % (record["key"], "; ".join(notes)))
    lines += _profile.rendered(result)
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
