"""Issue 16's targets as the bench families state them, and the profile beside each family's table: the floor
arithmetic on given figures, the lines it says, and the README renderer showing them (bench/_profile.py,
bench/backup.py, verify.py, restore.py, incremental.py, tools/render_measurements.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "bench"))

import _profile  # noqa: E402
from tests.sampleapp import DB, seed_app  # noqa: E402
import backup  # noqa: E402
import incremental  # noqa: E402
import restore  # noqa: E402
import verify  # noqa: E402


def phase(label: str, wall_s: float, cpu_s: float) -> dict:
    return {"label": label, "wall_s": wall_s, "cpu_s": cpu_s}


def a_profile(*phases: dict, cores: int = 2, noop_s: float = 2.0) -> dict:
    return {"phases": list(phases), "cores": cores, "seconds": 5.0,
            "ansible": {"ping": {"wall_s": 1.1, "cpu_s": 1.0, "runs": 3},
                        "module": {"wall_s": noop_s, "cpu_s": 1.8, "name": "backup_info", "runs": 3}}}


def summary(median_s: float, duration_s: float = None, archive_bytes: int = 100 * 2 ** 20) -> dict:
    return {"median_s": median_s, "cpu_s": median_s, "archive_bytes": archive_bytes,
            "archive_mb": archive_bytes / 2 ** 20, "module_tree_peak_mb": 60.0,
            "module_duration_median_s": duration_s}


def targets_of(family, records: dict) -> dict:
    """A family's targets on the given summaries: {target text: (figure, met)}."""
    _ratios, targets = family._targets({key: {"summary": value} for key, value in records.items()})
    return {found["target"]: (found["value"], found["met"]) for found in targets}


def test_a_stage_is_no_faster_than_its_slowest_phase_nor_its_cpu_shared_by_the_cores():
    phases = {"a": phase("a", 1.0, 1.0), "b": phase("b", 0.5, 0.5), "c": phase("c", 0.8, 1.6)}
    assert _profile.stage_seconds(phases, ["a", "b"], 2) == 1.0  # the slowest alone
    assert _profile.stage_seconds({"a": phase("a", 1.4, 0.9)}, ["a"], 2) == 0.9  # load lengthened its wall
    assert _profile.stage_seconds(phases, ["a", "b", "c"], 2) == pytest.approx(1.55)  # 3.1 CPU s on 2 cores
    assert _profile.stage_seconds(phases, ["a", "b", "c"], 1) == pytest.approx(3.1)


def test_the_engine_floor_adds_the_stages_one_after_the_other():
    phases = [phase("snapshot", 0.6, 0.6), phase("zstd", 1.0, 1.8), phase("check", 1.2, 1.2),
              phase("hashes", 0.8, 0.8)]
    # 0.6 s of snapshot, then 3.8 CPU s on 2 cores (1.9 s, more than the slowest's 1.2 s)
    assert _profile.engine_floor(phases, [["snapshot"], ["zstd", "check", "hashes"]], 2) == pytest.approx(2.5)
    assert _profile.engine_floor(phases, [["snapshot"], ["zstd", "check", "hashes"]], 8) == pytest.approx(1.8)


def test_the_ansible_budget_is_the_target_less_the_no_op_module():
    profile = a_profile(noop_s=2.0)
    target = _profile.budget("ansible row", 1.5, 3.0, "the hand pipeline", 4.9, 2.2)
    assert target == {"row": "ansible row", "target_s": 4.5, "target": "1.50x the hand pipeline's 3.00 s",
                      "row_s": 4.9, "engine_s": 2.2, "row_cpu_s": None}
    assert _profile.ansible_line(profile, target) == (
        "ansible row: the target is 1.50x the hand pipeline's 3.00 s = 4.50 s; ansible-playbook of backup_info "
        "alone takes 2.00 s, leaving 2.50 s for the engine; the row took 4.90 s in the rounds; the engine alone "
        "took 2.20 s in the rounds")


def test_a_target_below_the_ansible_floor_says_it_is_out_of_reach_through_ansible():
    line = _profile.ansible_line(a_profile(noop_s=2.0), _profile.budget("ansible row", 1.0, 1.5, "the baseline",
                                                                        None))
    assert line.endswith("ansible-playbook of backup_info alone takes 2.00 s, 0.50 s over the target before any "
                         "work: out of reach through ansible-playbook here")


def test_the_engine_line_says_how_far_the_floor_is_from_the_target():
    profile = a_profile(phase("snapshot", 0.5, 0.5), phase("check", 1.0, 1.0))
    stages = [["snapshot"], ["check"]]
    under = _profile.engine_line(profile, _profile.budget("engine row", 1.0, 2.0, "the baseline", 1.7), stages)
    assert under == ("engine row: the target is 1.00x the baseline's 2.00 s = 2.00 s; floor from the phases, "
                     "snapshot then check: 1.50 s, 0.50 s under the target; the row took 1.70 s in the rounds")
    over = _profile.engine_line(profile, _profile.budget("engine row", 0.6, 2.0, "the baseline", None), stages)
    assert over.endswith("1.50 s, 0.30 s over the target: out of reach while the engine does these phases")


def test_a_floor_above_the_rows_own_time_is_not_called_out_of_reach():
    """Phases measured under load the rounds did not see can add up to more than the row: that proves nothing."""
    profile = a_profile(phase("snapshot", 0.5, 0.5), phase("check", 1.0, 1.0))
    said = _profile.engine_line(profile, _profile.budget("engine row", 0.6, 2.0, "the baseline", 1.4),
                                [["snapshot"], ["check"]])
    assert "out of reach" not in said and "1.50 s, more than the row itself took: not conclusive" in said


def test_the_profile_lines_list_every_phase_and_both_ansible_floors():
    profile = a_profile(phase("snapshot", 0.5, 0.4))
    said = _profile.lines(profile)
    assert said == ["profile, each phase alone in this run, the fastest of 3 (5 s, outside the rounds): snapshot "
                    "0.50 s (CPU 0.40 s); ansible-playbook of ansible.builtin.ping 1.10 s, of backup_info on an "
                    "empty folder 2.00 s (the fastest of 3 runs)"]
    assert _profile.rendered({"measured": {"profile": dict(profile, lines=said)}}) == ["- " + said[0]]
    assert _profile.rendered({}) == []


def test_the_backup_family_states_issue_16s_targets_against_the_hand_pipeline():
    records = {"zstd_hand": summary(2.0), "ansible": summary(3.2, 2.4), "engine": summary(2.2, 2.1)}
    shown = targets_of(backup, records)
    assert shown["ansible row at most 1.5x the hand `tar | zstd -T0` pipeline (issue 16)"] == (1.6, False)
    assert shown["engine row at most 1.15x the hand `tar | zstd -T0` pipeline (issue 16)"] == (1.1, True)
    assert shown["no more than 1.2x the zstd hand pipeline"] == (1.6, False)  # the older target stays
    profile = a_profile(phase("snapshot", 0.5, 0.5), phase("zstd -3 -T0 of the snapshot", 1.0, 1.8),
                        phase("integrity_check", 0.9, 0.9), phase("page hashes + sha256", 0.6, 0.6), noop_s=2.0)
    said = backup.profile_lines(profile, records)
    assert said[1] == ("ansible row: the target is 1.50x the hand pipeline's 2.00 s = 3.00 s; ansible-playbook of "
                       "backup_info alone takes 2.00 s, leaving 1.00 s for the engine; the row took 3.20 s in the "
                       "rounds; the engine alone took 2.20 s in the rounds")
    # 0.5 s of snapshot, then 3.3 CPU s on 2 cores: 1.65 s; floor 2.15 s against 1.15 x 2.0 = 2.3 s
    assert "floor from the phases" in said[2] and ": 2.15 s, 0.15 s under the target" in said[2]


def test_the_verify_family_states_issue_16s_one_times_the_baseline_for_both_rows():
    records = {"baseline": summary(1.5), "ansible": summary(3.0, 2.0), "engine": summary(1.4, 1.3)}
    shown = targets_of(verify, records)
    assert shown["ansible row at most 1.0x the baseline (issue 16)"] == (2.0, False)
    assert shown["engine row at most 1.0x the baseline (issue 16)"] == (0.93, True)
    assert any(text.startswith("ansible row no slower than 1.5x") for text in shown)  # the older target stays


def test_the_incremental_family_states_the_engines_035x_of_its_own_full_backup():
    records = {"ansible_full": summary(5.0, 3.0), "ansible_incr": summary(3.0, 1.5, 2 ** 20),
               "engine_full": summary(3.0), "engine_incr": summary(1.2, None, 2 ** 20)}
    shown = targets_of(incremental, records)
    assert shown["engine_incr made in at most 0.35x the time of its own full backup (issue 16)"] == (0.4, False)
    assert shown["ansible_incr made in at most 0.5x the time of a full backup"] == (0.6, False)
    said = incremental.profile_lines(a_profile(phase("snapshot", 0.5, 0.5), phase("page hashes + sha256", 0.4, 0.4),
                                               phase("quick_check", 0.3, 0.3)), records)
    assert said[1].startswith("ansible_incr row: the target is 0.50x its full backup's 5.00 s = 2.50 s")
    assert said[2].startswith("engine_incr row: the target is 0.35x its full backup's 3.00 s = 1.05 s; floor from the "
                              "phases, snapshot then (page hashes + sha256 and quick_check side by side on 2 cores): "
                              "0.90 s")


def test_the_restore_family_reads_its_floors_against_the_fastest_peer():
    records = {"restic": summary(3.7), "borg": summary(3.2), "engine": summary(3.6)}
    profile = a_profile(phase("reader pass + sha256", 1.0, 1.2), phase("write + syncfs", 0.6, 0.4),
                        phase("quick_check", 0.5, 0.5))
    said = restore.profile_lines(profile, records)
    assert said[1].startswith("ansible row: the target is 0.70x the fastest peer's 3.20 s = 2.24 s")
    assert said[2].startswith("engine row: the target is 0.40x the fastest peer's 3.20 s = 1.28 s")
    assert "(reader pass + sha256 and write + syncfs side by side on 2 cores) then quick_check: 1.50 s, 0.22 s " \
        "over the target" in said[2]
    assert restore.profile_lines(profile, {"engine": summary(3.6)}) == said[:1]  # no peer ran: no budget


def renderer():
    spec = importlib.util.spec_from_file_location("render_measurements",
                                                  os.path.join(REPO, "tools", "render_measurements.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_block_shows_the_profile_after_the_targets_and_an_old_record_renders_without_it():
    module = renderer()
    results = module.load("bench")
    family = results["families"]["backup"]
    family = dict(family, profile={"lines": ["profile, each phase alone: snapshot 0.50 s",
                                             "engine row: the target is 1.15x the hand pipeline's 2.00 s = 2.30 s"]})
    shown = module.bench_backup({"families": dict(results["families"], backup=family)})
    targets = shown.split("\n- ", 1)[1]
    assert targets.endswith("- profile, each phase alone: snapshot 0.50 s\n"
                            "- engine row: the target is 1.15x the hand pipeline's 2.00 s = 2.30 s")
    without = dict(family)
    del without["profile"]
    assert module.bench_backup({"families": dict(results["families"], backup=without)}) == \
        module.bench_backup({"families": dict(results["families"], backup=dict(family, profile=None))})


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory):
    """The sample app seeded by its real seeding tool (a small database), its full backup by the engine, and the
    database extracted."""
    root = tmp_path_factory.mktemp("profile")
    app = root / "app"
    seed_app(app)
    database = app / DB
    code = ("import json, sys\nsys.path.insert(0, sys.argv[1])\nfrom ansible_collections.devops.reddit_backup."
            "plugins.module_utils._backup.create import BackupRequest, create_backup\nprint(json.dumps(create_backup("
            "BackupRequest(app_root=sys.argv[2], backup_dir=sys.argv[3]))))")
    made = subprocess.run(["/usr/bin/python3", "-c", code, os.path.join(REPO, "collections"), str(app),
                           str(root / "backups")], check=True, capture_output=True, text=True)
    archive = json.loads(made.stdout.strip().splitlines()[-1])["archive"]
    extracted = root / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", archive, "-C", str(extracted), "data/reddit_sentiment.db"],
                   check=True)
    return {"root": root, "app": str(app), "database": str(database), "archive": archive,
            "copy": str(extracted / "data" / "reddit_sentiment.db")}


@pytest.mark.parametrize("family, module", [("backup", backup), ("incremental", incremental), ("verify", verify),
                                            ("restore", restore)])
def test_the_phases_script_times_every_phase_its_familys_floor_adds(tiny_app, family, module, tmp_path):
    """bench/profile_phases.py, as run.py runs it (the targets' python, JSON on its last line), on a real database
    and a real archive: each phase (its fastest of 3 runs), and every label the family's floor names among them."""
    paths = {"backup": [tiny_app["app"], DB], "incremental": [tiny_app["app"], DB],
             "verify": [tiny_app["archive"], tiny_app["copy"]],
             "restore": [tiny_app["archive"], tiny_app["copy"], tiny_app["app"], DB]}[family]
    ran = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "profile_phases.py"), family] + paths
                         + [str(tmp_path), "--collections", os.path.join(REPO, "collections")],
                         check=True, capture_output=True, text=True)
    measured = json.loads(ran.stdout.strip().splitlines()[-1])
    phases = measured["phases"]
    labels = [phase["label"] for phase in phases]
    assert {label for stage in module.PROFILE_STAGES for label in stage} <= set(labels)
    assert all(phase["wall_s"] >= 0 and phase["cpu_s"] >= 0 for phase in phases)
    assert "| " + labels[0] + " |" in ran.stderr  # profile_backup.measure's table row, kept off the JSON
    # the timeline: one engine call as the row makes it, its outermost stage first, every stage that must run
    timeline = measured["timeline"]
    stages = {stage["label"]: stage for stage in timeline["stages"]}
    must = {"backup": ["snapshot", "archive", "removing the snapshot"],
            "incremental": ["snapshot", "page delta", "removing the snapshot"],
            "verify": ["reader pass", "the checks", "removing the private file"],
            "restore": ["reader pass", "the checks", "syncfs", "the swap", "removing the staging folder"]}[family]
    assert timeline["stages"][0]["label"].startswith("the rest")
    for word in must:
        assert [label for label in stages if word in label], (word, list(stages))
    assert timeline["start_s"] > 0 and timeline["cores"] == os.cpu_count()
    assert all(stage["wall_s"] >= 0 for stage in timeline["stages"])
    assert not {"timeline-backups", "timeline-app"} & set(os.listdir(tmp_path))  # the timeline's own, removed
