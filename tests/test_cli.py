import re
import shutil

import pytest
from conftest import CONFIGS, run_cli, smoke_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.mark.parametrize("config", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses(config, capsys):
    assert run_cli("fit", "--config", str(config), "--print_config") == 0
    assert "model:" in capsys.readouterr().out


def test_few_batch_fit_writes_tensorboard_scalars(mnist_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    code = run_cli(
        *smoke_args(mnist_dir, tmp_path / "cache", "clean.yaml"),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--transfer.window_start", "1",
        "--transfer.attacks", "[fgsm]",
    )  # fmt: skip
    assert code == 0
    events = list((tmp_path / "tb_logs").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    tags = EventAccumulator(str(events[0])).Reload().Tags()["scalars"]
    assert {"train/loss", "train/acc", "val/acc/clean", "val/loss", "val/acc/A/fgsm", "val/acc/A/fgsm_noise"} <= set(
        tags
    )
    assert any(tag.startswith("lr-") for tag in tags)
    assert re.findall(r"^arch: \w+$", (events[0].parent / "hparams.yaml").read_text(), re.M) == ["arch: lenet5"]
    said = [r.getMessage() for r in caplog.records if r.name == "advlit.study.transfer"]
    assert any(m.startswith("A/fgsm ") and "noise" in m for m in said), "the run ends with its summary table"
    assert any(m.startswith("metrics: ") for m in said) and any(m.startswith("TensorBoard: ") for m in said)


def test_the_saved_config_reruns(mnist_dir, tmp_path, monkeypatch):
    """config.yaml of a run with default attackers holds them in a form that parses again."""
    monkeypatch.chdir(tmp_path)
    args = smoke_args(mnist_dir, tmp_path / "cache", "clean.yaml")
    assert run_cli(*args, "--trainer.max_epochs", "1", "--transfer.window_start", "1", "--transfer.attacks", "[]") == 0
    (config,) = (tmp_path / "tb_logs").rglob("config.yaml")
    assert "Unable to serialize" not in config.read_text()
    assert run_cli("fit", "--config", str(config), "--print_config") == 0
    assert not list((tmp_path / "cache").rglob("attacker-*.pt")), "no attack, so no attacker network"
    assert not list((tmp_path / "cache").rglob("attacker-*.pt")), "no attack, so no attacker network"


def test_help_lists_every_command(capsys):
    assert run_cli("--help") == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^  {cmd}\b", out, re.M) for cmd in ("reproduce", "report")) and "fit" in out


def test_unknown_key_is_a_one_line_parser_error(capsys):
    assert run_cli("fit", "--config", str(CONFIGS / "clean.yaml"), "--data.bogus", "1") == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --data.bogus" in err
    assert "Traceback" not in err


def test_wrong_type_is_a_parser_error(capsys):
    assert run_cli("fit", "--model.lr", "fast") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_out_of_range_augmentation_is_one_line(capsys):
    assert run_cli("fit", "--data.erase_max_area", "1.5", "--data.download", "false") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "advlit: error: erase_max_area=1.5 must be in [0.02, 1]"


def test_missing_dataset_offline_is_one_line(tmp_path, capsys):
    code = run_cli(
        "fit", "--data.data_dir", str(tmp_path), "--data.download", "false",
        "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false", "--transfer.window_start", "1",
    )  # fmt: skip
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("advlit: error: MNIST not found") and "t10k-images-idx3-ubyte" in last


def test_the_plan_marks_each_stage_cached_or_to_make(mnist_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    args = [*smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml"), "--trainer.max_epochs", "1"]
    args += ["--transfer.window_start", "1", "--transfer.attacks", "[fgsm]"]
    plans = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("INFO", logger="advlit"):
            assert run_cli(*args) == 0
        plans.append([r.getMessage() for r in caplog.records if r.name == "advlit.cli"])
    first, again = plans
    assert first[0].startswith("plan (estimates from speeds measured on this device)")
    assert any(line.strip().startswith("to make") and "attacker A's network" in line for line in first)
    assert any(line.strip().startswith("to make") and "fgsm on the train set" in line for line in first)
    assert re.match(r"  total to make: about \d+ (s|min|h)$", first[-1])
    assert all(line.strip().startswith("cached") for line in again if "network (" in line or " on the " in line)
    assert sum("to make" in line for line in again) == 1 + 1, "only the defended network's training remains"
    assert any(re.match(r"epoch 1/1 done, \d+ s per epoch; about 0 min left", m) for m in
               [r.getMessage() for r in caplog.records if r.name == "advlit.runtime.progress"])  # fmt: skip
    ckpt = sorted(tmp_path.rglob("epoch=0-step=*.ckpt"))[0]
    ckpt = shutil.copy(ckpt, ckpt.with_name("renamed.ckpt"))  # the epochs done come from the file, not its name
    caplog.clear()
    with caplog.at_level("INFO", logger="advlit"):
        assert run_cli(*args[:-6], "--trainer.max_epochs", "2", *args[-4:], "--ckpt_path", str(ckpt)) == 0
    resumed = [r.getMessage() for r in caplog.records if r.name == "advlit.cli"]
    assert any(re.search(r"to make .* defended network: 2 epochs on .*, 1 done$", line) for line in resumed), resumed


def test_measuring_speeds_leaves_the_random_streams_alone():
    import torch

    from advlit.study.plan import measure

    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    speeds = measure("lenet5", torch.device("cpu"), batch_size=8, repeats=1)
    assert torch.equal(torch.rand(3), expected)
    assert speeds.train_batch > 0 and speeds.grad_pass > 0 and speeds.forward > 0


@pytest.mark.parametrize(
    "content, message",
    [(None, "not found"), ("", "is empty"), ("model: [\n", "is not valid YAML"), ("- 1\n", "not a mapping")],
)
def test_a_bad_config_file_is_named_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "run.yaml"
    if content is not None:
        path.write_text(content)
    assert run_cli("fit", "--config", str(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"advlit: error: config file {path} {message}"] or (
        len(err) == 1 and str(path) in err[0] and message in err[0]
    )


def test_zero_threads_is_one_line(capsys):
    assert run_cli("fit", "--threads", "0", "--data.download", "false") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "advlit: error: threads=0 must be >= 1 (or unset for one per core)"
    )


def test_threads_caps_this_process_and_its_children(monkeypatch):
    import os

    import torch

    from advlit.runtime.threads import cap_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    before = torch.get_num_threads()
    try:
        cap_threads(1)
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
        cap_threads(None)  # unset: torch's choice stays as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def refused_before_work(capsys, cache, *args) -> str:
    """Run ``advlit ARGS``; it must exit 2 with one ``advlit: error`` line and no network or set made."""
    assert run_cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("advlit: error: ") or "error:" in err[-1], err[-3:]
    assert not list(cache.rglob("*.pt")), "refused before any network or set was made"
    return err[-1]


def test_a_shortened_flag_is_refused_not_taken_for_a_longer_one(mnist_dir, tmp_path, capsys):
    args = smoke_args(mnist_dir, tmp_path / "cache", "clean.yaml")
    last = refused_before_work(capsys, tmp_path / "cache", *args, "--transfer.attacker_seed", "0")
    assert "--transfer.attacker_seed" in last and "unrecognized" in last


def test_a_shortened_reproduce_flag_is_not_matched(tmp_path, capsys):
    from advlit.reproduction import reproduce

    with pytest.raises(SystemExit) as exit:
        reproduce.main(["--tab", "2", "--dry_run"])
    assert exit.value.code == 2 and "--table" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trainer.devices", "0"], "trainer settings refused by Lightning"),
        (["--trainer.max_epochs", "-5"], "trainer settings refused by Lightning"),
        (["--trainer.strategy", "no_such_strategy"], "trainer settings refused by Lightning"),
        (["--trainer.accelerator", "tpu"], "trainer settings refused by Lightning"),
    ],
)
def test_a_trainer_setting_lightning_refuses_is_one_line(mnist_dir, tmp_path, capsys, flags, message):
    args = smoke_args(mnist_dir, tmp_path / "cache", "clean.yaml")
    last = refused_before_work(capsys, tmp_path / "cache", *args, *flags)
    assert last.startswith("advlit: error: ") and message in last


@pytest.mark.parametrize("content", [None, b"not a checkpoint", b"PK\x03\x04"[:2]])
def test_a_missing_or_bad_checkpoint_is_refused_before_any_work(mnist_dir, tmp_path, capsys, content):
    ckpt = tmp_path / "run.ckpt"
    if content is not None:
        ckpt.write_bytes(content)
    args = smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml")
    last = refused_before_work(capsys, tmp_path / "cache", *args, "--ckpt_path", str(ckpt))
    assert last.startswith("advlit: error: --ckpt_path") and str(ckpt) in last


def test_a_log_folder_that_cannot_be_written_is_refused_before_any_work(mnist_dir, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    args = smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml")
    save_dir = str(tmp_path / "a_file" / "logs")
    last = refused_before_work(capsys, tmp_path / "cache", *args, "--trainer.logger.init_args.save_dir", save_dir)
    assert "log folder" in last and "cannot be written" in last


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-true", "64"])
def test_a_precision_other_than_fp32_is_refused_before_any_work(mnist_dir, tmp_path, capsys, precision):
    args = smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml")
    last = refused_before_work(capsys, tmp_path / "cache", *args, "--trainer.precision", precision)
    assert f"trainer.precision={precision}" in last and "fp32" in last


def test_runs_compute_in_full_fp32_without_tf32(mnist_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args = smoke_args(mnist_dir, tmp_path / "cache", "clean.yaml")
    assert run_cli(*args, "--trainer.max_epochs", "1", "--transfer.window_start", "1", "--transfer.attacks", "[]") == 0
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"


def test_a_setting_added_since_a_run_started_blocks_its_resume_only_when_moved_from_its_default():
    from advlit.study.experiment import changed_settings

    old = {"data": {"seed": 0, "augment": True}}
    defaults = {"data": {"seed": 0, "augment": True, "extra_source_seeds": []}}
    same = {"data": {"seed": 0, "augment": True, "extra_source_seeds": []}}
    assert changed_settings(old, same, defaults=defaults) == [], "a new setting at its default: the same run"
    moved = {"data": {"seed": 0, "augment": True, "extra_source_seeds": [5]}}
    assert changed_settings(old, moved, defaults=defaults) == ["data.extra_source_seeds"]
    assert changed_settings(old, {"data": {"seed": 1, "augment": True}}, defaults=defaults) == ["data.seed"]
    assert changed_settings(old, same) == ["data.extra_source_seeds"], "without defaults every difference counts"


def test_a_setting_added_to_each_attacker_since_a_run_started_counts_like_any_added_setting():
    from advlit.study.experiment import changed_settings

    old = {"transfer": {"attackers": [{"name": "A", "seed": 2}, {"name": "Ap", "seed": 2}]}}
    defaults = {"transfer": {"attackers": [{"name": "A", "seed": 2, "members": None}] * 2}}
    now = {
        "transfer": {
            "attackers": [{"name": "A", "seed": 2, "members": None}, {"name": "Ap", "seed": 2, "members": None}]
        }
    }
    assert changed_settings(old, now, defaults=defaults) == []
    now["transfer"]["attackers"][1]["members"] = [{"seed": 3}]
    assert changed_settings(old, now, defaults=defaults) == ["transfer.attackers[1].members"]
    assert changed_settings(old, {"transfer": {"attackers": [{"name": "A", "seed": 2}]}}) == ["transfer.attackers"]


RESULTS = CONFIGS.parent / "results"


@pytest.mark.parametrize(
    "saved", sorted(RESULTS.glob("quick/table*/*/config.yaml"))[:4], ids=lambda p: "/".join(p.parts[-3:-1])
)
def test_a_committed_runs_saved_config_still_loads(saved, capsys):
    assert run_cli("fit", "--config", str(saved), "--print_config") == 0
    assert "train_attacks:" in capsys.readouterr().out
