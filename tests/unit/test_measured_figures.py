"""Every measured figure in the READMEs is what tools/render_measurements.py makes of the result files `make bench`
(bench/results/measured.json), `make molecule` (molecule/results/measured.json) and `make fresh-check`
(tools/results/fresh-check.json) write, so the docs cannot drift from the measurements; a measured-looking figure outside a rendered block must be listed with its reason."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A figure with a decimal point and a unit: what a measurement looks like (settings and caps are whole numbers).
DECIMAL_FIGURE = re.compile(r"(?<![\w.\-/])\d+\.\d+ ?(?:s|ms|min|h|MB|MiB|GB|KB|KiB|x|%)(?![\w/])")
# Figures outside the rendered blocks that are not measurements, or not yet recorded by a command, with the reason.
NOT_MEASURED = {
    ("bench/README.md", "1.2x"): "a target of the issue", ("bench/README.md", "1.5x"): "a target of the issue",
    ("bench/README.md", "0.5x"): "a target of the issue",
    ("bench/README.md", "1.15x"): "a target of issue 16 (the engine against the hand pipeline)",
    ("bench/README.md", "1.0x"): "a target of issue 16 (verify against its baseline)",
    ("bench/README.md", "0.35x"): "a target of issue 16 (the engine's incremental against its full backup)",
    ("bench/README.md", "0.7x"): "a target of issue 16 (the ansible restore against the fastest peer)",
    ("bench/README.md", "0.4x"): "a target of issue 16 (the engine's restore against the fastest peer)",
    ("collections/ansible_collections/devops/reddit_backup/README.md", "6.1 s"):
        "an example of the runner's message shape, not a measurement",
    ("collections/ansible_collections/devops/reddit_backup/README.md", "73.4 MiB"): "the same example message",
    ("collections/ansible_collections/devops/reddit_backup/README.md", "3.0 s"): "the same example message",
    ("collections/ansible_collections/devops/reddit_backup/docs/roles.md", "6.1 s"): "the same example message",
    ("collections/ansible_collections/devops/reddit_backup/docs/roles.md", "73.4 MiB"): "the same example message",
    ("collections/ansible_collections/devops/reddit_backup/docs/roles.md", "3.0 s"): "the same example message",
    ("collections/ansible_collections/devops/reddit_backup/README.md", "1.2 MiB"):
        "an example of the shape of `reddit-backup list`'s output, not a measurement",
}


def renderer():
    path = os.path.join(REPO, "tools", "render_measurements.py")
    spec = importlib.util.spec_from_file_location("render_measurements", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_measured():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    try:
        import _measured
    finally:
        sys.path.pop(0)
    return _measured


def test_every_measured_block_is_what_the_result_files_say():
    assert renderer().render_all(check=True) == [], "run python tools/render_measurements.py"


def test_the_readmes_show_the_measurements_in_rendered_blocks():
    module = renderer()
    found = set()
    for path in module.documents():
        with open(path, encoding="utf-8") as handle:
            found.update(module.blocks(handle.read()))
    assert found == set(module.RENDERERS), "a renderer no document uses, or a block no renderer makes"


def test_no_measured_figure_outside_a_rendered_block():
    module = renderer()
    loose = []
    for path in module.documents():
        with open(path, encoding="utf-8") as handle:
            text = module.BLOCK.sub("", handle.read())
        relative = os.path.relpath(path, REPO)
        loose += ["%s: %s" % (relative, figure) for figure in DECIMAL_FIGURE.findall(text)
                  if (relative, figure) not in NOT_MEASURED]
    assert loose == [], "render these from a result file (tools/render_measurements.py) or list them with a reason"


def test_a_changed_result_shows_as_a_stale_block(tmp_path):
    module = renderer()
    results = {source: module.load(source) for source in module.RESULTS}
    text = "<!-- measured:molecule:rpo -->\nRPO 1 s\n<!-- /measured -->\n"
    rendered = module.render_text(text, str(tmp_path / "doc.md"), results)
    assert rendered != text
    results["molecule"]["rpo"]["complete server failure"]["seconds"] += 1
    assert module.render_text(rendered, str(tmp_path / "doc.md"), results) != rendered


def test_a_molecule_run_is_recorded_from_what_tools_molecule_sh_writes(tmp_path):
    """The scenarios that passed replace theirs, a failed one keeps its last figures, and the RTO and RPO lines
    are read in the format the recovery_times callback keeps them."""
    module = renderer()
    results = tmp_path / "results"
    results.mkdir()
    (results / "summary.txt").write_text("recovery           ok         211s\ndisaster_recovery  FAILED     99s\n")
    (results / "recovery.recovery-times.txt").write_text(
        "app: RTO database corruption: 6.2 s from start to healthy; target 1800 s (30 min): met\n"
        "app: RTO point-in-time recovery: 19.0 s from start to healthy; target 7200 s (120 min): met\n")
    (results / "disaster_recovery.recovery-times.txt").write_text(
        "new: RPO complete server failure: the restored backup is from 2026-11-30T00:00:00Z, 1 s before this "
        "recovery; target 21600 s (6 h): met\n")
    path = tmp_path / "measured.json"
    before = module.load("molecule")
    path.write_text(json.dumps(before))
    after = module.record_molecule(str(results), "", str(path))
    assert after["scenarios"]["recovery"]["seconds"] == 211
    assert after["scenarios"]["disaster_recovery"] == before["scenarios"]["disaster_recovery"]
    assert after["recovery_times"]["database corruption"]["seconds"] == 6.2
    assert after["recovery_times"]["point-in-time recovery"]["target_s"] == 7200
    assert after["recovery_times"]["configuration loss"] == before["recovery_times"]["configuration loss"]
    assert after["rpo"] == before["rpo"]
    assert json.loads(path.read_text()) == after


def test_a_fleet_run_records_its_figures_and_the_readmes_render_them(tmp_path):
    """The fleet scenario's figures (fleet.measured.json) are kept only when the scenario passed; the table holds
    the wall times, the disk per host and the CPU per host."""
    module = renderer()
    results = tmp_path / "results"
    results.mkdir()
    figures = {"hosts": 6, "fleet_backup_seconds": 41.3, "single_backup_seconds": 17.9,
               "server_disk_bytes": {"app1": 2 * 2 ** 20, "app2": 3 * 2 ** 20}, "server_job_cpu_seconds": 1.2,
               "server_job_wall_seconds": 2.5, "server_job_cpu_per_host_seconds": 0.2, "backups_per_host": [2, 1]}
    (results / "fleet.measured.json").write_text(json.dumps(figures))
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(module.load("molecule")))
    (results / "summary.txt").write_text("fleet              FAILED     99s\n")
    assert module.record_molecule(str(results), "", str(path))["figures"].get("fleet") == \
        module.load("molecule").get("figures", {}).get("fleet")
    (results / "summary.txt").write_text("fleet              ok        199s\n")
    recorded = module.record_molecule(str(results), "", str(path))
    assert recorded["scenarios"]["fleet"]["seconds"] == 199
    assert {key: recorded["figures"]["fleet"][key] for key in figures} == figures
    table = module.molecule_fleet(recorded)
    for cell in ["6 app hosts in one run (forks) | 41.3 s wall", "one app host | 17.9 s wall",
                 "2.50 MiB on average (2.00 to 3.00 MiB)", "1.20 s CPU, 2.50 s wall) | 0.200 s", "1/2 backups each"]:
        assert cell in table


def test_a_fresh_check_run_is_recorded_from_what_tools_fresh_check_sh_writes(tmp_path, monkeypatch):
    module = renderer()
    (tmp_path / "summary.txt").write_text("%-24s %-7s %5ss\n%-24s %-7s %5ss\n" % (
        "apt-get install make", "ok", 9, "make test", "FAILED", 1700))
    (tmp_path / "test-summary.txt").write_text("%-16s %-7s %5ss\n" % ("unit", "ok", 80))
    (tmp_path / "skipped-steps.txt").write_text("molecule\n")
    (tmp_path / "make-test.log").write_text(
        "[matrix] === ansible-core 2.16.19: unit ===\n"
        "[matrix] ansible-core 2.20.10 needs a Python 3.12 or newer controller: none on PATH or under pyenv, skipped\n")
    monkeypatch.delenv("FRESH_CHECK_SKIP", raising=False)
    recorded = module.record_fresh_check(str(tmp_path), str(tmp_path / "fresh-check.json"))
    assert recorded["skipped"] == ("left out inside the root: molecule; ansible-core 2.20.10 needs a Python 3.12 or "
                                   "newer controller: none on PATH or under pyenv, skipped")
    assert recorded["commands"] == [{"name": "apt-get install make", "result": "ok", "seconds": 9},
                                    {"name": "make test", "result": "FAILED", "seconds": 1700}]
    assert recorded["test_steps"] == [{"name": "unit", "result": "ok", "seconds": 80}]
    assert "| `make test`: `unit` | 80 s | ok |" in module.fresh_check_steps(recorded)


@pytest.mark.parametrize("family", ["backup", "verify", "restore", "incremental"])
def test_the_bench_result_file_holds_every_family_with_its_run(family):
    measured = renderer().load("bench")["families"][family]
    assert measured["date"] and measured["commit"] and measured["methods"]
    assert set(measured["ratios"]) == {method["key"] for method in measured["methods"]}


def test_a_bench_run_of_some_families_keeps_the_others(tmp_path):
    module = bench_measured()
    path = tmp_path / "measured.json"
    path.write_text(json.dumps({"families": {"backup": {"kept": True}}}))
    family = {"loadavg_end": [1.0, 1.0, 1.0], "seconds": 9.0, "ratios": {"guide": {}}, "targets": [],
              "methods": [{"key": "guide", "title": "guide", "summary": {"median_s": 1.5}, "runs": [{}]}]}
    results = {"machine": {"code": {"commit": "abc1234", "dirty": []}, "nproc": 2, "cpu": "cpu", "zstd": "zstd",
                           "ansible_core": "core", "loadavg_start": [0.5, 0.5, 0.5]},
               "app": {"seed": {"summary": {"rows": 10}}, "database_bytes": 2 ** 20}, "options": {"repeat": 1},
               "families": {"restore": family, "verify": {"skipped": "no method"}}}
    measured = module.record(str(path), results)
    assert measured["families"]["backup"] == {"kept": True}
    assert "verify" not in measured["families"]
    assert measured["families"]["restore"]["methods"][0]["median_s"] == 1.5
    assert measured["families"]["restore"]["posts"] == 10
