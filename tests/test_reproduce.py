"""The table grids, skipping finished runs, and the report from fixture metrics files."""

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advlit.reproduction import report as report_mod
from advlit.reproduction import report_seeds
from advlit.reproduction import reproduce as reproduce_mod
from advlit.reproduction.reproduce import grid, run_folder
from advlit.reproduction.run_settings import lookup, parsed_config, run_config
from advlit.runtime.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_stop_left_over():
    """A test that stops the parallel runs leaves no stop behind for the next one."""
    yield
    reproduce_mod._STOPPING.clear()


def ended(pid: int, seconds: float = 5.0) -> bool:
    """Whether process ``pid`` ends (or is left a zombie, unreaped by whoever adopted it) within ``seconds``."""
    import time

    for _ in range(int(seconds / 0.05)):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def wait_for_text(path: Path, seconds: float = 60.0) -> str:
    import time

    for _ in range(int(seconds / 0.05)):
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {seconds} s")


@contextlib.contextmanager
def driver_and_its_run(driver_code: str, pid_file: Path):
    """Start a driver process (``driver_code``) whose run writes its pid (and more, space-separated)
    to ``pid_file``; yield the driver and that text. Both are killed afterwards, passed or not."""
    import signal

    driver = subprocess.Popen([sys.executable, "-c", driver_code])
    child_pid = None
    try:
        text = wait_for_text(pid_file)
        child_pid = int(text.split()[0])
        yield driver, text
    finally:
        driver.kill()
        if child_pid and not ended(child_pid, 0.1):
            os.kill(child_pid, signal.SIGKILL)


@pytest.mark.parametrize("table, overlay", [(2, None), (3, "resnet18.yaml"), (4, "noaug.yaml")])
def test_grid_expands_each_table(table, overlay):
    expanded = grid(table, "quick")
    assert len(expanded) == 8 == len({r.name for r in expanded})
    for run in expanded:
        assert run.configs[-1] == "profiles/quick.yaml"
        assert (overlay in run.configs) if overlay else len(run.configs) == 2
        assert (reproduce_mod.CONFIGS / run.configs[0]).exists()


def test_table5_trains_nothing_beyond_tables_2_and_4():
    assert grid(5, "paper") == grid(2, "paper") + grid(4, "paper")


@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_profiles_score_every_run_against_both_attackers(profile, capsys):
    from conftest import run_cli

    for run in grid(2, profile)[:1] + grid(4, profile)[:1]:
        configs = [a for c in run.configs for a in ("--config", str(reproduce_mod.CONFIGS / c))]
        assert run_cli("fit", *configs, "--print_config") == 0
        out = capsys.readouterr().out
        assert "name: A\n" in out and "name: Ap\n" in out, run


def test_profiles_use_the_efficient_cw_setting():
    import yaml

    from advlit.attacks.carlini_wagner import EFFICIENT_CW

    for profile in ("paper", "quick"):
        config = yaml.safe_load((reproduce_mod.CONFIGS / "profiles" / f"{profile}.yaml").read_text())
        assert config["data"]["attack_params"]["cw"] == EFFICIENT_CW, profile


def test_reproduce_runs_only_the_named_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["clean", "fgsm_jsma_cw"]) == 0
    versions = [
        next(a.split("=")[1] for a in cmd if a.startswith("--trainer.logger.init_args.version=")) for cmd in calls
    ]
    assert versions == ["clean", "fgsm_jsma_cw"]
    with pytest.raises(ConfigError, match="bogus"):
        reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["bogus"])


def test_dry_run_says_what_would_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("a dry run launched a run"))
    fake_metrics(run_folder(tmp_path / "quick", grid(2, "quick")[0]), {"clean": 0.99})
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], dry_run=True) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "table 2 (quick): 7 to run, 1 done (dry run: nothing ran)"
    ckpts = run_folder(tmp_path / "quick", grid(2, "quick")[1]) / "checkpoints"
    ckpts.mkdir(parents=True)
    torch.save({"epoch": 3, "state_dict": {}}, ckpts / "epoch=3-step=4.ckpt")
    reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], dry_run=True, only=["fgsm"])
    assert "[1/1] fgsm: resumes from epoch=3-step=4.ckpt: advlit fit" in capsys.readouterr().out, "the run in progress"
    reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], dry_run=True, only=["fgsm"], restart=True)
    assert "fgsm: starts over, removing its unfinished folder: advlit fit" in capsys.readouterr().out
    (ckpts / "epoch=3-step=4.ckpt").write_bytes(b"cut short")
    reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], dry_run=True, only=["fgsm"])
    out = capsys.readouterr().out
    assert "fgsm: would FAIL: no checkpoint in" in out, "as the run itself would"
    assert "--runs fgsm --seeds 0 --restart starts it over" in out, (
        "the advice restarts this run, not every unfinished one"
    )


def test_unknown_table_or_profile():
    with pytest.raises(ConfigError, match="table 6"):
        grid(6, "paper")
    with pytest.raises(ConfigError, match="fast"):
        grid(2, "fast")


def fake_metrics(path: Path, medians: dict[str, float], window=(5, 10), augment: bool = True, other=None) -> None:
    """A metrics.json whose matched attacker (A with augmentation, Ap without) has ``medians``, its
    controls 0.95, and the other attacker ``other`` (default: the same as the matched one)."""
    path.mkdir(parents=True, exist_ok=True)
    own, cross = ("A", "Ap") if augment else ("Ap", "A")
    flat = {"clean": medians["clean"]}
    for name, values in ((own, medians), (cross, other or medians)):
        for s, v in values.items():
            if s != "clean":
                flat[f"{name}/{s}"], flat[f"{name}/{s}_noise"] = v, 0.95
    per_epoch = {str(e): flat for e in range(1, window[1] + 1)}
    spec = {"seed": 2, "augment": True}
    record = {"window": list(window), "max": flat, "median": flat, "per_epoch": per_epoch,
              "test_images": 2000, "timings_s": {"training_s": 10.0}, "defender": {"augment": augment},
              "attackers": {"A": {"spec": spec}, "Ap": {"spec": {**spec, "augment": False}}},
              "config": "{}\n"}  # fmt: skip
    (path / "metrics.json").write_text(json.dumps(record))


def test_reproduce_skips_finished_runs_and_goes_on_after_failure(tmp_path, monkeypatch, capsys):
    results = tmp_path / "quick"
    done = grid(2, "quick")[0]
    made_by(results, done, ["--trainer.devices=2"])
    calls = []

    def fake_call(cmd, **_):
        calls.append(cmd)
        return 1 if len(calls) == 2 else 0  # the second launched run fails

    monkeypatch.setattr(subprocess, "call", fake_call)
    assert reproduce_mod.reproduce(2, "quick", results, ["--trainer.devices=2"]) == 1
    assert len(calls) == 7, "the finished run is skipped, the failed one does not stop the rest"
    assert all(cmd[-1] == "--trainer.devices=2" for cmd in calls)
    assert not any(f"version={done.name}" in " ".join(cmd) for cmd in calls)
    assert "failed runs: jsma" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="holds runs of profile 'quick'"):
        reproduce_mod.check_profile(results, "paper")


def test_drivers_side_by_side_never_see_a_half_written_profile_marker(tmp_path, monkeypatch):
    fresh = tmp_path / "paper"
    reproduce_mod.check_profile(fresh, "paper")
    assert (fresh / "PROFILE").read_text() == "paper\n" and [p.name for p in fresh.iterdir()] == ["PROFILE"]

    def no_write(*args, **kwargs):
        raise AssertionError("a claimed folder's marker was written again (a driver beside could read it empty)")

    monkeypatch.setattr(Path, "write_text", no_write)
    reproduce_mod.check_profile(fresh, "paper")  # the second driver of the profile


def test_reproduce_resumes_an_unfinished_run_from_its_newest_loadable_checkpoint(tmp_path, monkeypatch, capsys):
    results = tmp_path / "quick"
    run = grid(2, "quick")[0]
    ckpts = run_folder(results, run) / "checkpoints"
    ckpts.mkdir(parents=True)
    torch.save({"epoch": 3, "state_dict": {}}, ckpts / "epoch=3-step=4.ckpt")
    (ckpts / "epoch=4-step=5.ckpt").write_bytes(b"cut short by a kill")  # newest, unreadable
    os.utime(ckpts / "epoch=3-step=4.ckpt", (1, 1))
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    reproduce_mod.reproduce(2, "quick", results, [], only=[run.name])
    assert calls[0][-1] == f"--ckpt_path={ckpts / 'epoch=3-step=4.ckpt'}"
    assert "resuming from" in capsys.readouterr().out
    calls.clear()
    reproduce_mod.reproduce(2, "quick", results, [], only=[run.name], restart=True)
    assert not any(a.startswith("--ckpt_path") for a in calls[0]), "--restart starts from epoch 0"
    assert not run_folder(results, run).exists(), "the unfinished run's files go, so its config.yaml cannot block"


def test_a_resumed_fit_counts_the_epochs_its_checkpoint_holds_whatever_its_name(tmp_path):
    from advlit.runtime.checkpoints import epochs_behind
    from advlit.study.experiment import lightning_keyword

    torch.save({"epoch": 3, "state_dict": {}}, tmp_path / "renamed.ckpt")
    assert epochs_behind(str(tmp_path / "renamed.ckpt")) == 4, "epoch 3 (0-based) saved at its end"
    (tmp_path / "cut.ckpt").write_bytes(b"cut short by a kill")
    assert epochs_behind(str(tmp_path / "cut.ckpt")) == epochs_behind(None) == 0, "an estimate never fails"
    assert lightning_keyword("best") and lightning_keyword("registry:x") and not lightning_keyword("renamed.ckpt")


def test_plan_estimates_every_unfinished_run_and_counts_shared_stages_once(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVLIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("a plan launched a run"))
    results = tmp_path / "quick"
    fake_metrics(run_folder(results, grid(2, "quick")[0]), {"clean": 0.99})  # Clean is done
    ckpts = run_folder(results, grid(2, "quick")[1]) / "checkpoints"  # FGSM stopped after 4 of 10 epochs
    ckpts.mkdir(parents=True)
    torch.save({"epoch": 3, "state_dict": {}}, ckpts / "epoch=3-step=4.ckpt")
    flags = ["--data.data_dir", str(mnist_dir), "--data.download=false", "--threads=2"]
    seed_env, threads = os.environ.get("PL_GLOBAL_SEED"), torch.get_num_threads()
    reproduce_mod.main(["--table", "2", "--profile", "quick", "--plan", "--results", str(tmp_path), *flags])
    assert (os.environ.get("PL_GLOBAL_SEED"), torch.get_num_threads()) == (seed_env, threads), "process untouched"
    out = capsys.readouterr().out
    assert out.startswith("table 2 (quick): 7 runs to make")
    assert out.count("attacker A's network") == 1 and out.count("attacker Ap's network") == 1, "shared: once"
    assert out.count("defender's source's network") == 1 and out.count("defender: jsma on the train set") == 1
    assert out.count("defended network: 10 epochs") == 7, "each run trains its own"
    assert "defended network: 10 epochs on 1,200 images, 17 test sets, 4 done" in out
    assert out.splitlines()[-1].startswith("total to make: about")
    assert not (results / "table2" / "jsma").exists(), "nothing was run or written"
    with pytest.raises(SystemExit) as exit_:
        reproduce_mod.main(["--table", "2", "--profile", "quick", "--plan", "--results", str(tmp_path),
                            "--data.data_dir", str(tmp_path / "nowhere"), "--data.download=false"])  # fmt: skip
    assert exit_.value.code == 2 and "cannot plan table 2 fgsm:" in capsys.readouterr().err


def test_checkpoints_that_do_not_load_stop_the_run_and_are_kept(tmp_path, monkeypatch, capsys):
    results = tmp_path / "quick"
    run = grid(2, "quick")[0]
    ckpts = run_folder(results, run) / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "epoch=4-step=5.ckpt").write_bytes(b"written by another torch")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert reproduce_mod.reproduce(2, "quick", results, [], only=[run.name]) == 1
    assert not calls and (ckpts / "epoch=4-step=5.ckpt").exists()
    assert "no checkpoint in" in capsys.readouterr().out


def test_a_run_another_process_is_training_is_skipped(tmp_path, monkeypatch, capsys):
    results = tmp_path / "quick"
    run = grid(2, "quick")[0]
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    with reproduce_mod.run_lock(run_folder(results, run)) as mine:
        assert mine
        assert reproduce_mod.reproduce(2, "quick", results, [], only=[run.name]) == 0
    assert not calls and "running in another process; skipped" in capsys.readouterr().out
    reproduce_mod.reproduce(2, "quick", results, [], only=[run.name])
    assert len(calls) == 1, "the lock goes with the process that held it"


PAPERLIKE = {  # medians shaped like the paper's Table 2 (fractions)
    "clean": {"clean": 0.99, "fgsm": 0.42, "jsma": 0.61, "cw": 0.46},
    "fgsm": {"clean": 0.99, "fgsm": 0.99, "jsma": 0.60, "cw": 0.65},
    "jsma": {"clean": 0.99, "fgsm": 0.48, "jsma": 0.96, "cw": 0.75},
    "cw": {"clean": 0.99, "fgsm": 0.61, "jsma": 0.63, "cw": 0.99},
    "fgsm_jsma_cw": {"clean": 0.993, "fgsm": 0.99, "jsma": 0.95, "cw": 0.98},
}


def write_table2(results: Path, rows: dict) -> None:
    (results / "quick").mkdir(parents=True, exist_ok=True)
    (results / "quick" / "PROFILE").write_text("quick\n")
    for mix, medians in rows.items():
        fake_metrics(results / "quick" / "table2" / mix, medians)


def test_report_renders_cells_and_missing_runs(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2, 3]).read_text()
    rows = list(csv.reader(open(tmp_path / "out" / "table2.csv")))
    assert rows[0][:2] == ["trained on", "max Clean"]
    clean_row = next(r for r in rows if r[0] == "Clean")
    assert clean_row[1] == "99.00 (99.42)" and clean_row[6] == "42.00 (42.01)"
    missing = next(r for r in rows if r[0] == "FGSM + JSMA")
    assert all(c.startswith("missing (") for c in missing[1:])
    assert "Table 3" not in md, "a table without any run is left out"
    assert "Runs done: 5/8" in md
    assert "| (a)" in md and "| (b) " in md


def test_stage_times_count_a_shared_cached_stage_once_and_training_per_run():
    made = {"defender_jsma_train_set_s": 900.0, "attacker_A_surrogate_s": None}
    own = {"defender_jsma_train_set_s": 0.5, "attacker_A_surrogate_s": 0.2, "training_s": 10.0}
    run = {"made_s": made, "timings_s": own}
    line, blank, machines = report_mod.timings({2: {"clean": run, "fgsm": run, "cw": None}})
    assert "defender_jsma_train_set 900 s" in line, "made once, loaded by both runs: its making time, once"
    assert "training and scoring (white-box included) 20 s" in line and "attacker_A_surrogate 0 s" in line, (
        "no note: the runs' own times, summed"
    )
    assert machines.endswith("The runs were made on: not recorded in metrics.json.")


def test_stage_times_show_the_range_of_a_stage_made_more_than_once():
    first = {"made_s": {"attacker_A_cw_test_set_s": 1798.2}, "timings_s": {"training_s": 1.0}}
    again = {"made_s": {"attacker_A_cw_test_set_s": 1084.4}, "timings_s": {"training_s": 1.0}}
    line = report_mod.timings({2: {"clean": first, "fgsm": again, "jsma": again}})[0]
    assert "attacker_A_cw_test_set 1084-1798 s (made 2 times)" in line, "not the largest alone"
    close = [{"made_s": {"attacker_A_fgsm_test_set_s": s}, "timings_s": {}} for s in (7.36, 6.963, 6.9631)]
    line = report_mod.timings({2: dict(zip(("clean", "fgsm", "jsma"), close, strict=True))})[0]
    assert "attacker_A_fgsm_test_set 7 s (made 2 times)" in line, "two makes in the same second; the note's ms"


def verdicts(tmp_path: Path, rows: dict) -> dict[str, str]:
    write_table2(tmp_path, rows)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    return {
        line.split(")")[0][3:].split(",")[0]: line.split(" | ")[1] for line in md.splitlines() if line.startswith("| (")
    }


def test_findings_follow_the_numbers(tmp_path):
    ok = verdicts(tmp_path / "ok", PAPERLIKE)
    assert ok["a"] == ok["b"] == ok["c"] == ok["d"] == "reproduced" and ok["e"] == "not run"
    worse = {**PAPERLIKE, "jsma": {**PAPERLIKE["jsma"], "jsma": 0.80}, "clean": {**PAPERLIKE["clean"], "fgsm": 0.95}}
    bad = verdicts(tmp_path / "bad", worse)
    assert bad["a"] == "not reproduced" and bad["b"] == "not reproduced" and bad["c"] == "reproduced"


def test_finding_e_reports_the_part_that_ran(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    noaug = {**PAPERLIKE["clean"], "fgsm": 0.30, "jsma": 0.30, "cw": 0.30}  # worse than with augmentation
    fake_metrics(tmp_path / "quick" / "table4" / "clean", noaug, augment=False)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2, 4]).read_text()
    line = next(x for x in md.splitlines() if x.startswith("| (e)"))
    assert "Table 4 part not reproduced; Table 5 part not run" in line and "no-aug 30.0%" in line


def test_table5_comes_from_the_table2_and_table4_runs(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    mism = {"fgsm": 0.70, "jsma": 0.62, "cw": 0.55}
    fake_metrics(
        tmp_path / "quick" / "table2" / "fgsm_jsma_cw", {**PAPERLIKE["fgsm_jsma_cw"]}, other={**mism, "fgsm": 0.86}
    )
    fake_metrics(tmp_path / "quick" / "table4" / "fgsm_jsma_cw", {**PAPERLIKE["fgsm_jsma_cw"]}, augment=False,
                 other={**mism, "fgsm": 0.84})  # fmt: skip
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [5]).read_text()
    rows = list(csv.reader(open(tmp_path / "out" / "table5.csv")))
    m = next(r for r in rows if r[0] == "FGSM + JSMA + C&W" and r[1] == "M")
    mp = next(r for r in rows if r[0] == "FGSM + JSMA + C&W" and r[1] == "M'")
    assert m[2].startswith("99.00 (99.21)") and m[5].startswith("86.00 (86.66)")  # A, then A' FGSM
    assert mp[2].startswith("84.00") and mp[5].startswith("99.00")
    line = next(x for x in md.splitlines() if x.startswith("| (e)"))
    assert "Table 5 part reproduced" in line, line


@pytest.mark.parametrize(
    ("m", "mp", "holds"), [((0.90, 0.80), (0.99, 0.88), True), ((0.99, 0.86), (0.99, 0.96), False)]
)
def test_finding_e_asks_each_defender_to_lose_five_points_to_the_mismatched_attacker(tmp_path, m, mp, holds):
    """M at 90 vs 80 and M' at 99 vs 88 each lose >= 5 points (though 90 is under 88 + 5); M' at 99 vs 96 does not."""
    write_table2(tmp_path, PAPERLIKE)
    fake_metrics(tmp_path / "quick" / "table2" / "fgsm_jsma_cw", {**PAPERLIKE["fgsm_jsma_cw"], "fgsm": m[0]},
                 other={"fgsm": m[1], "jsma": 0.9, "cw": 0.9})  # fmt: skip
    fake_metrics(tmp_path / "quick" / "table4" / "fgsm_jsma_cw", {**PAPERLIKE["fgsm_jsma_cw"], "fgsm": mp[0]},
                 augment=False, other={"fgsm": mp[1], "jsma": 0.9, "cw": 0.9})  # fmt: skip
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2, 4]).read_text()
    line = next(x for x in md.splitlines() if x.startswith("| (e)"))
    assert f"Table 5 part {'reproduced' if holds else 'not reproduced'}" in line, line


def test_finding_f_compares_each_attack_with_its_noise(tmp_path):
    ok = verdicts(tmp_path / "ok", PAPERLIKE)  # attacks 42-61% vs noise 95%
    assert ok["f"] == "Table 2 reproduced; Table 4 not run"
    fragile = {**PAPERLIKE, "clean": {**PAPERLIKE["clean"], "fgsm": 0.90}}  # within 10 points of the noise
    assert verdicts(tmp_path / "bad", fragile)["f"] == "Table 2 not reproduced; Table 4 not run"


def test_report_refuses_other_profiles_and_empty_folders(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    with pytest.raises(ConfigError, match="no advlit reproduce runs"):
        report_mod.report(tmp_path, "paper", tmp_path / "out", [2])
    (tmp_path / "quick" / "PROFILE").write_text("paper\n")
    with pytest.raises(ConfigError, match="holds runs of profile 'paper'"):
        report_mod.report(tmp_path, "quick", tmp_path / "out", [2])
    with pytest.raises(ConfigError, match="profile 'slow' is unknown"):
        report_mod.report(tmp_path, "slow", tmp_path / "out", [2])


def test_cli_report_error_is_one_line(tmp_path, capsys):
    from conftest import run_cli

    assert run_cli("report", "--results", str(tmp_path), "--profile", "quick") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("advlit report: error:")


@pytest.mark.parametrize(
    "content",
    [b"\x80\x81binary", b'{"window": [5, 10], "max"', b'{"window": [5, 10]}'],
    ids=["binary", "truncated", "lacks fields"],
)
def test_report_names_an_unreadable_metrics_file_and_goes_on(tmp_path, capsys, content):
    write_table2(tmp_path, PAPERLIKE)
    bad = tmp_path / "quick" / "table2" / "fgsm" / "metrics.json"
    bad.write_bytes(content)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "unreadable" in err[0]
    assert "Runs done: 4/8" in md


def test_report_shows_worst_case_whitebox_and_masking_flags(tmp_path):
    write_table2(tmp_path, {"clean": PAPERLIKE["clean"], "fgsm": PAPERLIKE["fgsm"]})
    for mix, flagged in (("clean", False), ("fgsm", True)):
        path = tmp_path / "quick" / "table2" / mix / "metrics.json"
        record = json.loads(path.read_text())
        record["median"] |= {"A/worst": 0.3, "whitebox/fgsm": 0.05, "whitebox/pgd": 0.01, "A/cw_8bit": 0.5}
        record["gradient_masking"] = {
            "A/fgsm": {"black_box_median": 0.40 if flagged else 0.9, "white_box_median": 0.5, "flag": flagged}
        }
        path.write_text(json.dumps(record))
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    header = ("| trained on | worst case (black-box) | white-box fgsm (black-box fgsm on the same images) | "
              "white-box pgd | cw / 8-bit | masking flags |")  # fmt: skip
    assert header in md, "the black-box twin is named only for the attack that has one"
    assert "| Clean | 30.0 | 5.0 (90.0) | 1.0 | 46.0 / 50.0 | none |" in md, "black-box on the white-box images"
    assert "| FGSM | 30.0 | 5.0 (40.0) | 1.0 | 65.0 / 50.0 | A/fgsm (40.0 < 50.0) |" in md
    assert "cw_8bit" not in md, "8-bit sets are no attack columns of their own"
    assert "worst |" not in md.split("attacks beside their matched noise")[1].split("\n\n")[2].split("\n")[0], (
        "the worst case is no attack column of the controls table"
    )


def test_report_of_runs_without_the_new_columns_has_no_such_section(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    assert "worst case per image" not in report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()


def test_seeds_reseed_every_network_and_keep_seed_zero_as_it_was(tmp_path, monkeypatch):
    import inspect

    from advlit.study.datamodule import MNISTDataModule

    defaults = inspect.signature(MNISTDataModule).parameters
    assert (defaults["seed"].default, defaults["source_seed"].default) == (0, 1), "seed_overrides assumes them"
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["clean"], seed=0) == 0
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["clean"], seed=2) == 0
    seed0, seed2 = calls
    flags = ("--seed_everything", "--data.seed", "--data.source_seed", "--transfer.attacker_seed")
    assert not any(a.startswith(flags) for a in seed0), "seed 0 runs exactly as before"
    assert {"--seed_everything=2000", "--data.seed=2000", "--data.source_seed=2001",
            "--transfer.attacker_seed_offset=2000"} <= set(seed2)  # fmt: skip
    assert any(str(tmp_path / "quick" / "seed2") in a for a in seed2), "seed 2's runs have their own folder"
    with pytest.raises(ConfigError, match="seed -1"):
        reproduce_mod.seed_overrides(-1)


def test_seeds_refuse_flags_that_would_undo_the_reseeding(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: 0)
    run = grid(2, "quick")[0]
    with pytest.raises(ConfigError, match="--data.seed"):
        reproduce_mod.reproduce(2, "quick", tmp_path / "quick", ["--data.seed", "5"], only=["clean"], seed=1)
    with pytest.raises(ConfigError, match="--seed_everything"):
        reproduce_mod.check_seed_flags([0, 1], ["--seed_everything=7"], [run])
    (tmp_path / "mine.yaml").write_text("data:\n  source_seed: 9\n")
    with pytest.raises(ConfigError, match="--data.source_seed"):
        reproduce_mod.check_seed_flags([1], ["--config", str(tmp_path / "mine.yaml")], [run])
    reproduce_mod.check_seed_flags([0], ["--seed_everything=7"], [run])  # one seed, the user's own
    with pytest.raises(ConfigError, match="extra_source_seeds, which --seeds would not reseed"):
        reproduce_mod.check_seed_flags([0, 1], ["--data.extra_source_seeds=[5, 6]"], [run])
    ensemble = grid("frontier", "quick")[2]
    reproduce_mod.check_seed_flags([0, 1], [], [ensemble])  # its extra sources are reseeded


def test_seeds_without_seed_zero_mark_the_profile_folder_for_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: 0)
    reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["clean"], seed=1)
    assert (tmp_path / "quick" / "PROFILE").read_text() == "quick\n"
    assert (tmp_path / "quick" / "seed1" / "PROFILE").read_text() == "quick\n"


def made_by(results: Path, run, flags: list[str], **changes) -> Path:
    """A finished run (fixture metrics) whose config.yaml is what its command with ``flags`` resolves
    to, with ``changes`` (dotted keys as ``a__b``) applied."""
    import yaml

    folder = run_folder(results, run)
    fake_metrics(folder, {"clean": 0.99})
    config = parsed_config(tuple(reproduce_mod.fit_command(results, run, flags)[4:]))
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = config
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


MADE = ["--data.data_dir", "/elsewhere", "--model.lr=1e-3", "--optimizer", "Adam"]


@pytest.mark.parametrize(
    "flags",
    [
        MADE,  # the very command that made it
        ["--data.data_dir=../data", "--model.lr", "0.001", "--optimizer=Adam"],  # elsewhere; numbers by value
        [*MADE, "--trainer.logger.init_args.save_dir=x", "--threads=1"],  # where and how fast are not settings
    ],
)
def test_a_finished_run_counts_as_done_for_its_own_settings(tmp_path, monkeypatch, flags):
    made_by(tmp_path / "quick", grid(2, "quick")[0], MADE)
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("a finished run was run again"))
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", flags, only=["clean"]) == 0


@pytest.mark.parametrize(
    "flags, message",
    [
        ([*MADE, "--data.train_limit", "100"], r"data.train_limit: 10000 -> 100\b"),
        (MADE[:2], r"optimizer: \{'class_path': 'torch.optim.Adam'"),  # a flag it was made with, left out
        ([*MADE, "--data.attack_params={}"], r"data.attack_params.cw: \{.*\} -> None"),  # a mapping replaced whole
        ([*MADE, "--data.train_attacks+=fgsm"], r"data.train_attacks: \[\] -> \['fgsm'\]"),  # appended
    ],
)
def test_a_finished_run_made_with_other_settings_stops_the_table(tmp_path, monkeypatch, flags, message):
    made_by(tmp_path / "quick", grid(2, "quick")[0], MADE)
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("refused before any run starts"))
    with pytest.raises(ConfigError, match=message):
        reproduce_mod.reproduce(2, "quick", tmp_path / "quick", flags)


def test_a_setting_added_since_a_run_counts_only_where_the_command_moves_it(tmp_path, monkeypatch):
    made_by(tmp_path / "quick", grid(2, "quick")[0], [], transfer__quantize=None)  # an older run's config
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("a finished run was run again"))
    assert reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["clean"]) == 0
    with pytest.raises(ConfigError, match="transfer.quantize: not a setting of that run -> True"):
        reproduce_mod.reproduce(2, "quick", tmp_path / "quick", ["--transfer.quantize=true"], only=["clean"])


def test_the_batch_size_of_an_attack_that_draws_per_batch_counts_as_a_setting_of_the_run():
    from advlit.attacks import ATTACKS
    from advlit.reproduction.run_settings import PER_BATCH_ATTACKS, differing_settings

    assert set(PER_BATCH_ATTACKS) == {name for name, cls in ATTACKS.items() if not cls.batch_consistent}

    def config(train: list, transfer: list, whitebox: list, batch) -> dict:
        return {"data": {"train_attacks": train, "attack_batch_size": batch},
                "transfer": {"attacks": transfer, "whitebox_attacks": whitebox, "attack_batch_size": batch,
                             "eval_batch_size": batch}}  # fmt: skip

    def changed(*lists) -> list[str]:
        return differing_settings(config(*lists, None), config(*lists, 1000), lambda: {})

    assert changed(["fgsm"], ["fgsm", "cw"], ["pgd"]) == [], "advlit's own attacks: a batch size is not a setting"
    assert changed(["torchattacks"], ["fgsm"], ["pgd"]) == ["data.attack_batch_size: None -> 1000"]
    assert changed([], ["torchattacks"], ["pgd"]) == ["transfer.attack_batch_size: None -> 1000"]
    assert changed([], ["fgsm"], ["torchattacks"]) == ["transfer.eval_batch_size: None -> 1000"], "white-box batch"


def test_the_driver_and_its_settings_check_import_no_torch():
    code = ("import sys; import advlit.reproduction.reproduce, advlit.reproduction.run_settings; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", "advlit reproduce starts without loading torch"


def test_lookup_reads_a_dotted_key_and_gives_none_where_a_part_is_missing():
    config = {"data": {"seed": 3, "augment": None}, "seed_everything": 0}
    assert lookup(config, "data.seed") == 3 and lookup(config, "seed_everything") == 0
    assert lookup(config, "data.missing") is None and lookup(config, "seed_everything.deeper") is None


def test_a_finished_run_without_config_yaml_is_checked_against_its_metrics_copy(tmp_path):
    import yaml

    folder = made_by(tmp_path, grid(2, "quick")[0], [])
    config = yaml.safe_load((folder / "config.yaml").read_text())
    (folder / "config.yaml").unlink()
    record = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**record, "config": yaml.safe_dump(config)}))
    assert run_config(folder) == config
    (folder / "metrics.json").write_text(json.dumps({**record, "config": None}))
    assert run_config(folder) is None
    with pytest.raises(ConfigError, match="no config.yaml to compare its settings with"):
        reproduce_mod.check_finished_runs([grid(2, "quick")[0]], tmp_path, [])


def test_every_seed_is_checked_before_the_first_seed_runs(tmp_path, monkeypatch, capsys):
    made_by(tmp_path / "quick" / "seed1", grid(2, "quick")[0], reproduce_mod.seed_overrides(1), seed_everything=999)
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: pytest.fail("seed 0 ran before seed 1 was checked"))
    with pytest.raises(SystemExit) as exit_:
        reproduce_mod.main(["--table", "2", "--profile", "quick", "--results", str(tmp_path), "--seeds", "0", "1"])
    assert exit_.value.code == 2 and "seed_everything: 999 -> 1000" in capsys.readouterr().err


def test_a_run_finished_by_another_process_meanwhile_is_not_run_again(tmp_path, monkeypatch, capsys):
    import contextlib

    results = tmp_path / "quick"
    run = grid(2, "quick")[0]

    @contextlib.contextmanager
    def lock_taken_after_the_other_finished(folder):
        fake_metrics(folder, {"clean": 0.99})
        yield True

    monkeypatch.setattr(reproduce_mod, "run_lock", lock_taken_after_the_other_finished)
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert reproduce_mod.reproduce(2, "quick", results, [], only=[run.name], restart=True) == 0
    assert not calls and (run_folder(results, run) / "metrics.json").exists(), "never rerun nor deleted"
    assert "done already" in capsys.readouterr().out
    shutil.rmtree(run_folder(results, run))
    assert reproduce_mod.reproduce(2, "quick", results, ["--data.train_limit=5"], only=[run.name]) == 1
    assert "finished meanwhile with other settings" in capsys.readouterr().out, "its config.yaml has no limit"


def test_a_reseeded_run_trains_other_attacker_networks(capsys):
    from conftest import run_cli

    run = grid(2, "quick")[0]
    configs = [a for c in run.configs for a in ("--config", str(reproduce_mod.CONFIGS / c))]
    assert run_cli("fit", *configs, *reproduce_mod.seed_overrides(1), "--print_config") == 0
    out = capsys.readouterr().out
    assert "attacker_seed_offset: 1000" in out and "seed_everything: 1000" in out and "source_seed: 1001" in out


def test_report_over_seeds_shows_mean_std_and_verdicts_per_seed(tmp_path):
    write_table2(tmp_path, PAPERLIKE)  # seed 0
    for seed, shift in ((1, 0.02), (2, -0.02)):
        folder = tmp_path / "quick" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "PROFILE").write_text("quick\n")
        for mix, medians in PAPERLIKE.items():
            fake_metrics(folder / "table2" / mix, {k: v + shift for k, v in medians.items()})
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    assert "## Over seeds 0, 1, 2" in md
    clean_row = next(line for line in md.splitlines() if line.startswith("| Clean |") and "±" in line)
    assert "42.00 ± 2.00 (n=3) [42.01]" in clean_row  # FGSM median: 0.42, 0.44, 0.40
    assert "| finding | seed 0 | seed 1 | seed 2 | mean of seeds 0, 1, 2 |" in md


def test_seed_spread_shows_n_and_the_findings_mean_only_seeds_with_every_run(tmp_path):
    write_table2(tmp_path, PAPERLIKE)  # seed 0
    for seed, mixes in ((1, PAPERLIKE), (2, {"clean": PAPERLIKE["clean"]})):  # seed 2 still running
        folder = tmp_path / "quick" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "PROFILE").write_text("quick\n")
        for mix, medians in mixes.items():
            fake_metrics(folder / "table2" / mix, {k: v + 0.02 for k, v in medians.items()})
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    assert "| finding | seed 0 | seed 1 | seed 2 | mean of seeds 0, 1 |" in md
    fgsm_row = next(line for line in md.splitlines() if line.startswith("| FGSM |") and "n=2" in line)
    assert "61.00 ± 1.41 (n=2)" in fgsm_row, "FGSM-trained, JSMA set: 0.60 and 0.62, seed 2 has no such run"
    assert any(line.startswith("| Clean |") and "(n=3)" in line for line in md.splitlines())
    shutil.rmtree(tmp_path / "quick" / "seed1" / "table2" / "fgsm")  # now only seed 0 has every run
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    assert "| seed 2 | seed 0 alone (the one with every run) |" in md
    assert report_seeds.spread([0.5]) == "50.00 (n=1)", "one value has no spread to show"


def test_a_seed_is_complete_when_it_has_every_run_the_findings_read():
    run = {"median": {"clean": 0.99}}
    by_seed = {0: {2: {"clean": run}, 3: {"clean": run}}, 1: {2: {"clean": run}}, 2: {2: {"clean": None}}}
    assert report_seeds.complete_seeds(by_seed) == [0, 1], "Table 3 (no finding reads it) is not needed"


def test_report_of_one_seed_has_no_seed_section(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    assert "Over seeds" not in report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()


def test_report_of_seeds_run_without_seed_zero_starts_at_the_lowest(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "PROFILE").write_text("quick\n")
    for seed, shift in ((1, 0.02), (2, -0.02)):
        folder = tmp_path / "quick" / f"seed{seed}"
        folder.mkdir()
        (folder / "PROFILE").write_text("quick\n")
        for mix, medians in PAPERLIKE.items():
            fake_metrics(folder / "table2" / mix, {k: v + shift for k, v in medians.items()})
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    assert "tables of seed 1, the lowest with runs" in md and "## Over seeds 1, 2" in md
    assert "| Clean | 99.00 (99.42) |" not in md and "44.00 (42.01)" in md, "the tables show seed 1 (FGSM 0.44)"


def test_control_match_rows_show_what_each_control_spends_beside_its_attack():
    budget = lambda l0, l2, linf: {"budget": {"l0": l0, "l2": l2, "linf": linf}}  # noqa: E731
    run = {"set_quality": {"A/jsma": budget(40.0, 5.0, 1.0), "A/jsma_noise": budget(40.0, 5.5, 1.0),
                           "A/fgsm": budget(700.0, 4.3, 0.2)}}  # fmt: skip
    header, rows = report_mod.control_match_rows({"clean": run})
    assert header[0] == "set" and [r[0] for r in rows] == ["A/jsma"], "a set without its control has no row"
    assert rows[0][1:3] == ["40.0", "40.0"] and rows[0][7:] == ["+0.0%", "+10.0%", "+0.0%"]


def test_a_finding_the_seeds_disagree_on_is_within_seed_noise():
    def findings(tables):  # one table per seed: its verdicts
        return [("(a) x", tables["a"], "numbers"), ("(b) y", tables["b"], "numbers"), ("(c) z", "not run", "")]

    by_seed = {0: {"a": "reproduced", "b": "reproduced"}, 1: {"a": "reproduced", "b": "not reproduced"}}
    a, b, c = report_seeds.findings_with_evidence(by_seed, findings)
    assert a[1:3] == ("reproduced", "2 seeds, all agree")
    assert b[1] == "within seed noise" and "1 reproduced, 1 not reproduced" in b[2]
    assert c[1:3] == ("not run", "no run")
    (one,) = report_seeds.findings_with_evidence({0: {"a": "reproduced", "b": "-"}}, findings)[:1]
    assert one[1] == "reproduced" and one[2].startswith("1 seed")


def test_the_report_says_which_controls_the_runs_used():
    first = report_mod.controls_text({"a": {"median": {}}})
    fixed = report_mod.controls_text({"a": {"controls_version": 2}})
    assert "first controls" in first and "set to 1" in first
    assert "JSMA's own per-pixel changes" in fixed and "first" not in fixed
    assert "mix control versions" in report_mod.controls_text({"a": {"median": {}}, "b": {"controls_version": 2}})


def test_parallel_runs_train_at_once_each_with_its_own_log(tmp_path, monkeypatch, capsys):
    import threading

    results, running, most = tmp_path / "quick", [0], [0]
    guard, both = threading.Lock(), threading.Barrier(2, timeout=20)

    def fake_fit(cmd, log):
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        both.wait()  # returns only when two runs are in here at once
        with open(log, "a") as out:
            out.write(f"training {cmd[-1]}\n")
        with guard:
            running[0] -= 1
        return 0

    monkeypatch.setattr(reproduce_mod, "call_logged", fake_fit)
    runs = ["clean", "fgsm", "jsma", "cw"]
    assert reproduce_mod.reproduce(2, "quick", results, [], only=runs, parallel=2) == 0
    assert most[0] == 2
    for name in runs:
        assert f"version={name}" in (results / "table2" / f"{name}.log").read_text()
    assert "output: " in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--parallel", "0"], ["--parallel", "2", "--launcher", "slurm"]])
def test_a_bad_parallel_setting_is_one_line(flags, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        reproduce_mod.main(["--table", "2", "--results", str(tmp_path), *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--parallel" in err and err.count("\n") == 1


def test_an_interrupted_parallel_driver_ends_its_runs(tmp_path):
    import sys
    import threading

    log = tmp_path / "run.log"
    codes = []
    cmd = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    waiter = threading.Thread(target=lambda: codes.append(reproduce_mod.call_logged(cmd, log)))
    waiter.start()
    for _ in range(200):
        if "started" in (log.read_text() if log.exists() else ""):
            break
        threading.Event().wait(0.05)
    reproduce_mod.stop_children()
    waiter.join(timeout=10)
    assert not waiter.is_alive() and codes and codes[0] != 0
    assert not reproduce_mod._CHILDREN


def test_a_terminated_driver_ends_its_run(tmp_path):
    """``kill PID`` of ``advlit reproduce`` (SIGTERM) ends the ``advlit fit`` it is waiting on."""
    import signal

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    driver_code = (
        "import subprocess, sys\n"
        "from advlit.reproduction import reproduce\n"
        "reproduce.end_runs_on_sigterm()\n"
        f"subprocess.call([sys.executable, '-c', {child!r}])\n"
    )
    with driver_and_its_run(driver_code, pid_file) as (driver, text):
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=30) == 128 + signal.SIGTERM
        assert ended(int(text)), "the run outlived its terminated driver"


def test_the_driver_puts_back_the_sigterm_handler_it_replaced(tmp_path):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        reproduce_mod.main(["--table", "2", "--results", str(tmp_path), "--parallel", "0"])
    assert signal.getsignal(signal.SIGTERM) is before, "a process that calls main() keeps its own SIGTERM"


def test_a_stopped_parallel_driver_starts_no_further_run(tmp_path):
    reproduce_mod.stop_children()
    code = reproduce_mod.call_logged([sys.executable, "-c", "open('started', 'w')"], tmp_path / "run.log")
    assert code != 0 and not Path("started").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_run_ends_with_its_driver_even_on_kill_9(tmp_path):
    """A driver killed with SIGKILL runs no handler; its run is killed by Linux, not left running."""
    pid_file = tmp_path / "child.pid"
    child = (
        "import os, time\n"
        "from advlit.runtime.driver import DRIVER_PID, end_with_driver\n"
        "bound = end_with_driver()\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{bound}} {{os.environ.get(DRIVER_PID)}}')\n"
        "time.sleep(60)\n"
    )
    driver_code = (
        "import subprocess, sys\n"
        "from advlit.runtime.driver import child_env\n"
        f"subprocess.call([sys.executable, '-c', {child!r}], env=child_env())\n"
    )
    with driver_and_its_run(driver_code, pid_file) as (driver, text):
        child_pid, bound, passed_on = text.split()
        assert bound == "True" and passed_on == child_pid, "bound, and its own ranks bind to it in turn"
        driver.kill()
        driver.wait(timeout=30)
        assert ended(int(child_pid)), "the run outlived its killed driver"


def test_only_a_run_started_by_a_driver_is_bound_to_it(monkeypatch):
    from advlit.runtime import driver

    monkeypatch.delenv(driver.DRIVER_PID, raising=False)
    assert driver.end_with_driver() is False, "a run started by hand is bound to nothing"
    assert driver.child_env()[driver.DRIVER_PID] == str(os.getpid())


def test_the_frontier_study_runs_three_defenders_with_the_frontier_overlay_last(tmp_path, monkeypatch, capsys):
    runs = grid("frontier", "quick")
    assert [r.name for r in runs] == ["clean", "fgsm_jsma_cw", "fgsm_jsma_cw_ensemble"]
    assert all(r.configs[-2:] == ("profiles/quick.yaml", "transfer_frontier.yaml") for r in runs)
    assert [r.extra_sources for r in runs] == [False, False, True]
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    with pytest.raises(SystemExit) as exit_:
        reproduce_mod.main(
            ["--table", "frontier", "--profile", "quick", "--results", str(tmp_path), "--seeds", "0", "1"]
        )
    assert exit_.value.code == 0
    ensemble = [c for c in calls if "--trainer.logger.init_args.version=fgsm_jsma_cw_ensemble" in c]
    assert len(calls) == 6 and all("--trainer.logger.init_args.name=frontier" in c for c in calls)
    assert "--data.extra_source_seed_offset=1000" in ensemble[1], "seed 1 reseeds the extra sources too"
    assert not any(a.startswith("--data.extra_source") for c in calls if c not in ensemble for a in c), (
        "runs without extra sources get no such flag: runs made before it existed stay the same runs"
    )
    config = parsed_config(tuple(reproduce_mod.fit_command(tmp_path, runs[2], [], seed=1)[4:]))
    assert (lookup(config, "data.extra_source_seeds"), lookup(config, "data.extra_source_seed_offset")) == (
        [5, 6],
        1000,
    )
    assert [a["name"] for a in lookup(config, "transfer.attackers")] == ["A", "E"]
    with pytest.raises(ConfigError, match="table 6 is unknown"):
        grid(6, "quick")


COMMITTED = reproduce_mod.CONFIGS.parent / "results"


@pytest.mark.parametrize("table", [2, 3, 4, "frontier"])
def test_every_committed_run_counts_as_done_with_the_command_that_made_it(table):
    checked = 0
    for profile in ("quick", "paper") if table != "frontier" else ("quick",):
        folder = COMMITTED / profile
        seeds = [0] + [int(p.name[4:]) for p in folder.glob("seed*")]
        for seed in seeds:  # raises, naming the setting, where a finished run would be refused
            sub = reproduce_mod.seed_folder(folder, seed)
            reproduce_mod.check_finished_runs(grid(table, profile), sub, [], seed)
            checked += len(list((sub / reproduce_mod.table_folder(table)).glob("*/metrics.json")))
    assert checked, f"no committed run of table {table} was checked"


FRONTIER_ATTACKS = ["fgsm", "jsma", "cw", "mifgsm", "di_fgsm", "ti_fgsm"]


def fake_frontier(path: Path, accuracy: float, exceptions: dict[str, float] | None = None) -> None:
    """A frontier run's metrics.json: every set of attackers A and E at ``accuracy`` (``exceptions``
    by key, e.g. ``E/di_fgsm``), every control at 0.95, clean 0.99."""
    path.mkdir(parents=True, exist_ok=True)
    flat = {"clean": 0.99}
    for name in ("A", "E"):
        for a in FRONTIER_ATTACKS:
            flat[f"{name}/{a}"], flat[f"{name}/{a}_noise"] = (exceptions or {}).get(f"{name}/{a}", accuracy), 0.95
    spec = {"seed": 2, "augment": True}
    record = {"window": [5, 10], "max": flat, "median": flat, "per_epoch": {"10": flat}, "test_images": 2000,
              "defender": {"augment": True}, "attacks": {a: {} for a in FRONTIER_ATTACKS},
              "attackers": {"A": {"spec": spec}, "E": {"spec": spec, "members": [spec] * 3}}}  # fmt: skip
    (path / "metrics.json").write_text(json.dumps(record))


def test_the_frontier_report_gives_each_defender_s_verdict_with_its_evidence(tmp_path):
    folder = tmp_path / "quick"
    for seed, sub in ((0, folder), (1, folder / "seed1")):
        (sub / "PROFILE").parent.mkdir(parents=True, exist_ok=True)
        (sub / "PROFILE").write_text("quick\n")
        fake_frontier(sub / "frontier" / "clean", 0.30 + 0.1 * seed)
        fake_frontier(sub / "frontier" / "fgsm_jsma_cw", 0.95, {"A/jsma": 0.85} if seed == 0 else {})
        fake_frontier(sub / "frontier" / "fgsm_jsma_cw_ensemble", 0.93, {"E/di_fgsm": 0.80 + 0.05 * seed})
    text = report_mod.report(tmp_path, "quick", tmp_path / "out", ["frontier"]).read_text()
    assert "| undefended | A | 99.00 ± 0.00 (n=2) | 35.00 ± 7.07 (n=2) (gap -60.00) |" in text, (
        "over seeds, gap to noise"
    )
    assert "| defender | attacker | clean | FGSM | JSMA | C&W | MI-FGSM | DI-FGSM | TI-FGSM |" in text
    assert "| FGSM+JSMA+C&W | within seed noise: A/jsma under 90% on some seeds | 2 seeds disagree |" in text
    assert ("| FGSM+JSMA+C&W, ensemble adversarial training | does not hold: under 90% on E/di_fgsm (1 of them "
            "MI-, DI- or TI-FGSM) | 2 seeds, all agree |") in text  # fmt: skip
    shutil.rmtree(folder / "seed1")
    text = report_mod.report(tmp_path, "quick", tmp_path / "out", ["frontier"]).read_text()
    assert "within seed noise" not in text and "1 seed: the seed spread is not measured" in text
    assert "does not hold: under 90% on A/jsma (the paper's attacks only)" in text
    record = json.loads((folder / "frontier" / "fgsm_jsma_cw_ensemble" / "metrics.json").read_text())
    record["median"] = {"clean": 0.99, **{f"A/{a}": 0.95 for a in FRONTIER_ATTACKS}}  # E's sets not scored
    (folder / "frontier" / "fgsm_jsma_cw_ensemble" / "metrics.json").write_text(json.dumps(record))
    text = report_mod.report(tmp_path, "quick", tmp_path / "out", ["frontier"]).read_text()
    assert "| not judged: E/fgsm, E/jsma, E/cw, E/mifgsm, E/di_fgsm, E/ti_fgsm not scored on every seed |" in text


def test_the_plan_counts_a_shared_network_once_within_a_run_and_across_runs(monkeypatch):
    from advlit.reproduction import table_plan
    from advlit.study.plan import Stage

    def stages(flags, speeds):  # ensemble E holds A's network: the same cache file twice in one run
        shared = Stage("attacker A's network", False, 3600.0, "a.pt")
        return [shared, Stage("set", False, 600.0, flags[0]), shared, Stage("defended network", False, 7200.0)], 10

    monkeypatch.setattr(table_plan, "run_stages", stages)
    lines = table_plan.table_plan([("run 1", ["s1.pt"], None), ("run 2", ["s2.pt"], None)])
    assert lines[0] == "run 1: about 3.2 h" and lines[4] == "run 2: about 2.2 h", lines


def kernels_run(folder: Path, kernels: str, device: str = "cpu", pins: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    record = {"device": device, "provenance": {"machine": {"cpu_capability": kernels, "kernel_pins": pins or {}}}}
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_reproduce_notes_finished_runs_made_with_other_cpu_kernels(tmp_path):
    from advlit.reproduction.kernels import kernel_note

    avx512 = {"cpu_capability": "AVX512", "kernel_pins": {}}
    runs = [kernels_run(tmp_path / "clean", "AVX2"), kernels_run(tmp_path / "fgsm", "AVX512", "cuda"),
            tmp_path / "jsma"]  # fmt: skip
    note = kernel_note(runs, here=avx512)
    assert "used AVX2 CPU kernels and this machine uses AVX512" in note
    assert "ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2" in note, "the pins that make AVX2's sets here"
    assert kernel_note(runs, here={"cpu_capability": "AVX2"}) is None, "same kernels (a GPU run's are no CPU's)"
    assert kernel_note([tmp_path / "jsma"], here=avx512) is None, "nothing finished"
    aten_only = {"cpu_capability": "AVX2", "kernel_pins": {"ATEN_CPU_CAPABILITY": "avx2"}}
    note = kernel_note(runs, here=aten_only)
    assert "this machine uses AVX2 (ATen pinned alone)" in note, "oneDNN's and MKL's kernels still differ"
    wide = [kernels_run(tmp_path / "cw", "AVX512")]
    note = kernel_note(wide, here={"cpu_capability": "AVX2"})
    assert "a machine with AVX512 kernels makes theirs" in note and "ATEN_CPU_CAPABILITY" not in note


def test_reproduce_reads_the_kernels_of_the_whole_table_not_only_the_runs_asked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: 0)
    monkeypatch.setattr("advlit.runtime.provenance.machine", lambda: {"cpu_capability": "AVX512"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    made_by(tmp_path / "quick", grid(2, "quick")[0], [])  # Clean, finished
    clean = json.loads((run_folder(tmp_path / "quick", grid(2, "quick")[0]) / "metrics.json").read_text())
    clean |= {"device": "cpu", "provenance": {"machine": {"cpu_capability": "AVX2"}}}
    (run_folder(tmp_path / "quick", grid(2, "quick")[0]) / "metrics.json").write_text(json.dumps(clean))
    reproduce_mod.reproduce(2, "quick", tmp_path / "quick", [], only=["fgsm"])
    assert "the finished runs here used AVX2 CPU kernels" in capsys.readouterr().err


def test_torch_honours_aten_cpu_capability_the_setting_the_note_names():
    """An assumption about torch, checked: advlit's note is only as good as this setting."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "DEFAULT"


def test_a_run_records_the_settings_that_pin_its_cpu_kernels(monkeypatch):
    from advlit.runtime.provenance import KERNEL_PINS, machine

    for name in KERNEL_PINS:
        monkeypatch.delenv(name, raising=False)
    assert machine()["kernel_pins"] == {}
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert machine()["kernel_pins"] == {"DNNL_MAX_CPU_ISA": "AVX2"}
    record = {"device": "cpu", "torch_threads": 1, "provenance": {"machine": {**machine(), "cpu": "X"}}}
    assert report_mod.machine_words(record).startswith("X (") and " pinned" in report_mod.machine_words(record)


def test_a_run_records_the_vector_extensions_its_cpu_offers_beside_the_pinned_ones(tmp_path):
    from advlit.runtime.provenance import cpu_extensions

    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_bf16\n")
    assert cpu_extensions(info) == ["avx2", "avx512f", "avx512_bf16"]
    info.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an ARM CPU names no x86 flags
    assert cpu_extensions(info) is None
    assert cpu_extensions(tmp_path / "absent") is None
    machine = {"cpu": "X", "cores": 2, "cpu_capability": "AVX2", "kernel_pins": {"ATEN_CPU_CAPABILITY": "avx2"},
               "cpu_extensions": ["avx2", "avx512f"]}  # fmt: skip
    words = report_mod.machine_words({"device": "cpu", "torch_threads": 1, "provenance": {"machine": machine}})
    assert words == "X (2 cores, AVX2 pinned, CPU offers avx2 avx512f), 1 thread(s), cpu"


def test_one_diagonal_cell_under_95_decides_finding_b_before_the_other_rows_run():
    from advlit.reproduction.report_findings import findings

    def run(fgsm: float) -> dict:
        return {"median": {"clean": 0.99, "A/fgsm": fgsm}, "defender": {"augment": True},
                "attackers": {"A": {"spec": {"augment": True}}}}  # fmt: skip

    b = lambda t2: next(f for f in findings({2: t2}) if f[0].startswith("(b)"))  # noqa: E731
    assert b({"fgsm": run(0.80)})[1:] == ("not reproduced", "fgsm-trained on fgsm 80.0% (jsma, cw rows not run)")
    assert b({"fgsm": run(0.97)})[1] == "not run", "every cell so far passes: the others decide"
    assert b({})[1:] == ("not run", "")
    full = {"fgsm": run(0.80), "jsma": run(0.99), "cw": run(0.99)}
    for name in ("jsma", "cw"):
        full[name]["A/" + name] = full[name]["median"].pop("A/fgsm")
    by_seed = {0: {2: {"fgsm": run(0.80)}}, 1: {2: full}}
    (b_of_seeds,) = [f for f in report_seeds.findings_with_evidence(by_seed, findings) if "(b)" in f[0]]
    assert b_of_seeds[1:3] == ("not reproduced", "2 seeds, all agree"), "one seed with fewer rows still agrees"
