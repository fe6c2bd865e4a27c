"""The SLURM launcher: job parameters, flags, requeue state and status without a cluster; and, where
sbatch exists (tests/slurm_localhost.sh sets up a one-node SLURM), a smoke grid end to end."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CONFIGS

from advlit.reproduction import slurm
from advlit.reproduction.reproduce import Run
from advlit.runtime.errors import ConfigError


def test_a_gpu_job_asks_for_one_task_per_gpu_on_one_node():
    settings = slurm.SlurmSettings(partition="gpu", gpus_per_job=4, time_min=90, array_parallelism=3)
    params = settings.job_parameters(training=True)
    assert params["slurm_tasks_per_node"] == params["slurm_gpus_per_node"] == 4 and params["slurm_nodes"] == 1
    assert params["slurm_time"] == 90 and params["slurm_partition"] == "gpu" and params["slurm_signal_delay_s"] > 0
    assert settings.device_flags() == ["--trainer.accelerator", "gpu", "--trainer.devices", "4",
                                       "--trainer.strategy", "ddp"]  # fmt: skip
    prepare = settings.job_parameters(training=False)
    assert prepare["slurm_tasks_per_node"] == 1 and prepare["slurm_gpus_per_node"] == 1
    assert slurm.SlurmSettings().device_flags() == ["--trainer.accelerator", "cpu"]


def test_slurm_flags_are_split_off_and_checked():
    found, rest = slurm.split_slurm_flags(["--slurm.partition", "p", "--slurm.gpus_per_job=2", "--data.seed", "1"])
    assert found == {"partition": "p", "gpus_per_job": "2"} and rest == ["--data.seed", "1"]
    assert slurm.settings_from(found) == slurm.SlurmSettings(partition="p", gpus_per_job=2)
    with pytest.raises(ConfigError, match="--slurm.gpus is unknown"):
        slurm.settings_from({"gpus": "2"})
    with pytest.raises(ConfigError, match="whole number"):
        slurm.settings_from({"time_min": "soon"})
    with pytest.raises(ConfigError, match="must be >= 1"):
        slurm.settings_from({"array_parallelism": "0"})


def test_an_element_resumes_from_its_checkpoint_and_a_finished_one_is_done(tmp_path):
    elements = slurm.array_elements(2, "quick", [0, 1], ["clean"])
    assert [(seed, run.name) for seed, run in elements] == [(0, "clean"), (1, "clean")]
    runner = slurm.TrainRun(2, "quick", str(tmp_path), ["--data.download", "false"], elements)
    cmd, folder = runner.command(1)
    assert folder == tmp_path / "seed1" / "table2" / "clean" and "--ckpt_path" not in " ".join(cmd)
    assert "--seed_everything=1000" in cmd, "seed 1 reseeds every network"
    (folder / "checkpoints").mkdir(parents=True)
    import torch

    torch.save({"epoch": 3, "state_dict": {}}, folder / "checkpoints" / "epoch=3-step=40.ckpt")
    cmd, _ = runner.command(1)
    assert cmd[-1].startswith("--ckpt_path=") and cmd[-1].endswith("epoch=3-step=40.ckpt"), "a requeued one resumes"
    (folder / "metrics.json").write_text("{}")
    assert runner.command(1) is None
    resubmitted = runner.checkpoint(1)
    assert resubmitted.function is runner and resubmitted.args == (1,), "a timeout resubmits the same element"


def test_status_says_what_is_done_running_failed_or_waiting(tmp_path):
    state = {"profile": "quick", "logs": "L", "elements": [[0, 2, "clean"], [0, 2, "fgsm"], [0, 2, "jsma"],
             [0, 2, "cw"]], "jobs": ["9_0", "9_1", "9_2", "9_3"]}  # fmt: skip
    path = slurm.state_path(tmp_path, 2)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(state))
    done = slurm.run_folder(tmp_path, Run(2, "clean", ()))
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    states = {"9_0": "COMPLETED", "9_1": "RUNNING", "9_2": "FAILED", "9_3": "PENDING"}
    lines = slurm.status_lines(tmp_path, 2, job_state=lambda job, logs: states[job])
    assert [line.split(": ")[1].split(" (")[0] for line in lines[:4]] == ["done", "running", "failed", "waiting"]
    assert lines[-1].startswith("table 2: 1 done, 1 failed, 1 running, 1 waiting")
    with pytest.raises(ConfigError, match="no SLURM submission of table 3"):
        slurm.status_lines(tmp_path, 3)


def test_slurm_flags_without_the_slurm_launcher_are_one_line(capsys):
    from advlit.reproduction import reproduce

    with pytest.raises(SystemExit) as exit:
        reproduce.main(["--table", "2", "--slurm.partition", "p"])
    assert exit.value.code == 2 and "go with --launcher slurm" in capsys.readouterr().err


def squeue_empty(user_jobs: list[str], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if not any(j.split("_")[0] in user_jobs for j in out):
            return True
        time.sleep(3)
    return False


def cluster_answers() -> bool:
    """Whether sbatch exists and a node of the cluster is up (the daemons may be installed but stopped)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(state.strip("*~#") in ("idle", "mixed", "allocated") for state in out.split())


@pytest.mark.slurm
@pytest.mark.skipif(not cluster_answers(), reason="needs a SLURM cluster that answers (tests/slurm_localhost.sh)")
def test_a_smoke_grid_on_slurm_matches_the_local_launcher_and_survives_a_kill(mnist_dir, tmp_path):
    flags = ["--config", str(CONFIGS / "smoke.yaml"), "--trainer.max_epochs", "8",
             "--data.data_dir", str(mnist_dir), "--data.download", "false",
             "--data.progress", "false", "--trainer.enable_progress_bar", "false", "--threads", "1"]  # fmt: skip
    env = {"ADVLIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    base = [
        sys.executable,
        "-m",
        "advlit",
        "reproduce",
        "--table",
        "2",
        "--profile",
        "quick",
        "--runs",
        "clean",
        "fgsm",
    ]
    slurm_args = ["--launcher", "slurm", "--slurm.cpus_per_task", "1", "--slurm.mem_gb", "2", "--slurm.time_min", "30"]
    import os

    run_env = {**os.environ, **env}
    out = subprocess.run([*base, "--results", str(tmp_path / "slurm"), *slurm_args, *flags], env=run_env,
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    state = json.loads((tmp_path / "slurm" / "quick" / "slurm" / "table2.json").read_text())
    array = state["jobs"][0].split("_")[0]
    element, checkpoints = state["jobs"][1], tmp_path / "slurm" / "quick" / "table2" / "fgsm" / "checkpoints"
    for _ in range(1200):  # once the element has a checkpoint, kill it: its requeue must resume and finish
        if list(checkpoints.glob("*.ckpt")):
            break
        time.sleep(0.5)
    requeued = subprocess.run(["scontrol", "requeue", element], capture_output=True, text=True)
    assert requeued.returncode == 0, requeued.stderr
    assert squeue_empty([state["prepare"], array], timeout=900), "the jobs did not finish in 15 minutes"
    logs = Path(state["logs"])
    assert "making the" in (logs / f"{state['prepare']}_0_log.err").read_text(), "the shared stages: one job"
    starts = (logs / f"{array}_1_0_log.out").read_text().count("element 1 seed 0 table 2 fgsm")
    assert starts == 2, "the requeued element ran again (the log keeps both parts)"
    for i in range(2):
        plan = [line for line in (logs / f"{array}_{i}_0_log.err").read_text().splitlines() if "to make" in line]
        assert plan and all("defended network" in line or "total" in line for line in plan), "shared stages cached"
    local = subprocess.run([*base, "--results", str(tmp_path / "local"), *flags], env=run_env, capture_output=True,
                           text=True, cwd=tmp_path)  # fmt: skip
    assert local.returncode == 0, local.stderr[-2000:]
    for name in ("clean", "fgsm"):
        a = json.loads((tmp_path / "slurm" / "quick" / "table2" / name / "metrics.json").read_text())
        b = json.loads((tmp_path / "local" / "quick" / "table2" / name / "metrics.json").read_text())
        assert a["median"] == b["median"] and a["max"] == b["max"], name
    resumed = json.loads((tmp_path / "slurm" / "quick" / "table2" / "fgsm" / "metrics.json").read_text())
    assert resumed["resumed_after_epochs"], "the requeued run resumed from its checkpoint, to the same numbers"
