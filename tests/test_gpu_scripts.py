"""The prepared GPU calls' logic, tried on the CPU (ALLOW_CPU=1) with the smoke overlay on the fixture data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gpu_paper(tmp_path: Path, mnist_dir: Path, **knobs: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALLOW_CPU": "1", "MNIST_DIR": str(mnist_dir), "OUT": str(tmp_path / "out"),
           "ADVLIT_CACHE": str(tmp_path / "cache"), "PY": sys.executable, "OMP_NUM_THREADS": "1",
           "EXTRA": f"--config {ROOT / 'configs' / 'smoke.yaml'} --threads 1 --trainer.max_epochs 1 "
                    "--transfer.window_start 1 --transfer.attacks [fgsm] --transfer.whitebox_attacks []",
           **knobs}  # fmt: skip
    return subprocess.run(["bash", "benchmarks/gpu_paper.sh"], cwd=ROOT, env=env, capture_output=True, text=True)


def committed(tmp_path: Path) -> Path:
    """The committed networks and Table 4 Clean alone, as if no other run were committed yet."""
    folder = tmp_path / "committed"
    shutil.copytree(ROOT / "results" / "paper" / "networks", folder / "networks")
    shutil.copytree(ROOT / "results" / "paper" / "table4" / "clean", folder / "table4" / "clean")
    shutil.copy(ROOT / "results" / "paper" / "PROFILE", folder / "PROFILE")
    return folder


def test_gpu_paper_runs_what_remains_and_sends_back_only_the_runs_it_finished(tmp_path, mnist_dir):
    folder = committed(tmp_path)
    proc = gpu_paper(tmp_path, mnist_dir, TABLES="4", RUNS="fgsm", PARALLEL="2", LIMIT="300", COMMITTED=str(folder))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    back = tmp_path / "out" / "results" / "paper"
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "table4: ended" in summary and "table4/fgsm: finished" in summary
    assert (back / "table4" / "fgsm" / "metrics.json").is_file() and not list(back.rglob("*.ckpt"))
    assert not (back / "table4" / "clean").exists(), "a committed run is not sent back"
    assert '"device": "cpu"' in (back / "table4" / "fgsm" / "metrics.json").read_text()
    again = gpu_paper(tmp_path / "again", mnist_dir, TABLES="4", RUNS="clean", COMMITTED=str(folder))  # other settings
    assert "finished with other settings" in (tmp_path / "again" / "out" / "table4.txt").read_text()
    assert again.returncode == 1, "a refused table fails the call"
    summary = (tmp_path / "again" / "out" / "summary.txt").read_text()
    assert "table4: FAILED" in summary and "table4: no run made in this call" in summary


def test_gpu_paper_refuses_in_one_line_without_mnist(tmp_path):
    proc = gpu_paper(tmp_path, tmp_path / "nowhere")
    assert proc.returncode == 2 and "refused: no MNIST under" in proc.stderr.strip().splitlines()[-1]
