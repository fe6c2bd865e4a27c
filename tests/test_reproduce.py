"""The table grids, skipping finished runs, and the report from fixture metrics files."""

import csv
import json
import subprocess
from pathlib import Path

import pytest

from advlit import report as report_mod
from advlit import reproduce as reproduce_mod
from advlit.errors import ConfigError
from advlit.reproduce import MIXES, grid, run_folder


@pytest.mark.parametrize("table, runs, overlay", [(2, 8, None), (3, 8, "resnet18.yaml"), (4, 8, "noaug.yaml"), (5, 32, None)])
def test_grid_expands_each_table(table, runs, overlay):
    expanded = grid(table, "quick")
    assert len(expanded) == runs == len({r.name for r in expanded})
    for run in expanded:
        assert run.configs[-1] == "profiles/quick.yaml"
        assert (overlay in run.configs) if overlay else len(run.configs) == 2
        assert (reproduce_mod.CONFIGS / run.configs[0]).exists()
    if table == 5:
        pairs = {(r.overrides[0], r.overrides[1]) for r in expanded}
        assert len(pairs) == 4 and all(sum(r.name.startswith(m + "-") for r in expanded) == 4 for m in MIXES)
        assert "--data.augment=false" in grid(5, "paper")[-1].overrides


def test_unknown_table_or_profile():
    with pytest.raises(ConfigError, match="table 6"):
        grid(6, "paper")
    with pytest.raises(ConfigError, match="fast"):
        grid(2, "fast")


def fake_metrics(path: Path, medians: dict[str, float], window=(5, 10)) -> None:
    path.mkdir(parents=True, exist_ok=True)
    per_epoch = {str(e): medians for e in range(1, window[1] + 1)}
    record = {"window": list(window), "max": medians, "median": medians, "per_epoch": per_epoch,
              "test_images": 2000, "timings_s": {"training_s": 10.0}}  # fmt: skip
    (path / "metrics.json").write_text(json.dumps(record))


def test_reproduce_skips_finished_runs_and_goes_on_after_failure(tmp_path, monkeypatch, capsys):
    results = tmp_path / "quick"
    done = grid(2, "quick")[0]
    fake_metrics(run_folder(results, done), {"clean": 0.99})
    calls = []

    def fake_call(cmd):
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


def verdicts(tmp_path: Path, rows: dict) -> dict[str, str]:
    write_table2(tmp_path, rows)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2]).read_text()
    return {line.split(")")[0][3:]: line.split(" | ")[1] for line in md.splitlines() if line.startswith("| (")}


def test_findings_follow_the_numbers(tmp_path):
    ok = verdicts(tmp_path / "ok", PAPERLIKE)
    assert ok["a"] == ok["b"] == ok["c"] == ok["d"] == "reproduced" and ok["e"] == "not run"
    worse = {**PAPERLIKE, "jsma": {**PAPERLIKE["jsma"], "jsma": 0.80}, "clean": {**PAPERLIKE["clean"], "fgsm": 0.95}}
    bad = verdicts(tmp_path / "bad", worse)
    assert bad["a"] == "not reproduced" and bad["b"] == "not reproduced" and bad["c"] == "reproduced"


def test_finding_e_reports_the_part_that_ran(tmp_path):
    write_table2(tmp_path, PAPERLIKE)
    noaug = {**PAPERLIKE["clean"], "fgsm": 0.30, "jsma": 0.30, "cw": 0.30}  # worse than with augmentation
    fake_metrics(tmp_path / "quick" / "table4" / "clean", noaug)
    md = report_mod.report(tmp_path, "quick", tmp_path / "out", [2, 4]).read_text()
    line = next(x for x in md.splitlines() if x.startswith("| (e)"))
    assert "Table 4 part not reproduced; Table 5 part not run" in line and "no-aug 30.0%" in line


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
