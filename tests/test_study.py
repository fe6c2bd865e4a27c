"""The black-box pipeline on the fixture data: caches, the mix, the callback, DDP, resume."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli, smoke_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from advlit.attacks import FGSM, JSMA, Attack, CarliniWagnerL2, run_attack
from advlit.runtime.errors import ConfigError
from advlit.study import adversarial_sets, cache, surrogate
from advlit.study import transfer as transfer_mod
from advlit.study.cache import load_tensors, save_tensors
from advlit.study.datamodule import MNISTDataModule
from advlit.study.transfer import TransferEvaluation
from advlit.study.window import window_stats

LIGHT = dict(download=False, source_epochs=1, progress=False, batch_size=100)


def test_window_stats_on_a_known_sequence():
    history = {e: {"clean": 0.9 + e / 100, "fgsm": [0.5, 0.7, 0.6, 0.9, 0.2][e - 1]} for e in range(1, 6)}
    stats = window_stats(history, 2, 4)
    assert stats["max"]["fgsm"] == 0.9 and stats["median"]["fgsm"] == 0.7
    assert window_stats(history, 1, 4)["median"]["fgsm"] == pytest.approx(0.65)  # even length: mean of 0.6, 0.7
    assert stats["max"]["clean"] == pytest.approx(0.94) and stats["median"]["clean"] == pytest.approx(0.93)
    assert window_stats(history, 5, 5)["median"]["fgsm"] == 0.2


def test_cache_files_are_checked_on_load(tmp_path):
    path = tmp_path / "set.pt"
    save_tensors({"x": torch.arange(10.0)}, {"k": 1}, path)
    assert torch.equal(load_tensors(path, {"k": 1})["x"], torch.arange(10.0))
    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert load_tensors(path, {"k": 2}) is None  # another key: stale
    path.write_bytes(path.read_bytes()[:-50])  # truncated
    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert load_tensors(path, {"k": 1}) is None
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left behind"
    assert cache.made_seconds(path) is None, "no note: unknown"
    cache.record_made(path, 12.3456)
    assert cache.made_seconds(path) == 12.346
    cache.made_path(path).write_text("{not json")
    assert cache.made_seconds(path) is None


def test_a_set_is_made_again_for_a_surrogate_with_other_weights_under_the_same_key(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))

    def make(net, weights=None):
        return adversarial_sets.load_or_make(
            net, "net", "fgsm", FGSM(0.2), "test", x, y, "d", str(tmp_path), 3, False, weights
        )

    first = make(model).x_adv
    assert torch.equal(make(model, cache.weights_digest(model)).x_adv, first), "the caller's digest is the same"
    _, path = adversarial_sets.set_path("net", "fgsm", FGSM(0.2), "test", "d", str(tmp_path))
    stored = torch.load(path, weights_only=True)
    legacy = {k: v for k, v in stored["meta"].items() if k != adversarial_sets.WEIGHTS}
    save_tensors(stored["tensors"], legacy, path)  # written before sets carried their surrogate's weights
    assert torch.equal(make(model).x_adv, first), "an older entry without the weights digest is still read"
    assert adversarial_sets.WEIGHTS not in torch.load(path, weights_only=True)["meta"], "read, not made again"
    retrained = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))  # same key, other weights
    save_tensors(stored["tensors"], stored["meta"], path)
    with pytest.warns(UserWarning, match="corrupt or stale"):
        again = make(retrained).x_adv
    assert torch.equal(again, FGSM(0.2)(retrained, x, y)), "made on the network it is now asked for"


@pytest.fixture
def counters(monkeypatch):
    """Counts surrogate trainings and attack runs."""
    calls = {"train": 0, "attack": 0}
    real_train, real_run = surrogate._train, adversarial_sets.run_attack

    def train(*args, **kwargs):
        calls["train"] += 1
        return real_train(*args, **kwargs)

    def run(*args, **kwargs):
        calls["attack"] += 1
        return real_run(*args, **kwargs)

    monkeypatch.setattr(surrogate, "_train", train)
    monkeypatch.setattr(adversarial_sets, "run_attack", run)
    return calls


class DrawsPerBatch(Attack):
    """Noise seeded once per call: an image's copy depends on the batch it is attacked in."""

    batch_consistent = False
    norm = "linf"  # its control's kind, for test sets

    def perturb(self, model, x, y):
        generator = torch.Generator().manual_seed(0)
        return x + 0.1 * torch.rand(x.shape, generator=generator)


def test_a_set_of_an_attack_that_draws_per_batch_is_keyed_by_its_batch_size(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))

    def make(batch):
        return adversarial_sets.load_or_make(model, "net", "a", DrawsPerBatch(), "train", x, y, "d", str(tmp_path),
                                             batch, False).x_adv  # fmt: skip

    by3, by6 = make(3), make(6)
    assert not torch.equal(by3, by6), "the attack's sets differ by batch size"
    assert torch.equal(by3, run_attack(DrawsPerBatch(), model, x, y, 3, False)), "each is made at its own size"
    assert torch.equal(by6, run_attack(DrawsPerBatch(), model, x, y, 6, False))
    assert torch.equal(make(3), by3), "and each is found again at its size"
    files = sorted(p.name for p in (tmp_path / "adversarial").glob("*.pt"))
    assert len(files) == 2, files
    with pytest.raises(ValueError, match="batch size"):
        adversarial_sets.set_path("net", "a", DrawsPerBatch(), "train", "d", str(tmp_path))
    fgsm_keys = {adversarial_sets.set_path("net", "fgsm", FGSM(0.2), "test", "d", None, b)[0] for b in (None, 3, 6)}
    assert len(fgsm_keys) == 1, "a batch-consistent attack's key (every set cached so far) is as it was"
    make(None)  # the default size: 100 on the CPU
    _, default = adversarial_sets.set_path("net", "a", DrawsPerBatch(), "train", "d", str(tmp_path), 100)
    assert default.is_file()


def test_the_plan_keys_a_set_that_draws_per_batch_with_the_runs_devices_batch_size(mnist_dir, tmp_path, monkeypatch):
    from advlit.study import plan

    data = MNISTDataModule(str(mnist_dir), cache_dir=str(tmp_path), **LIGHT)  # its data stay on the CPU
    transfer = TransferEvaluation(attacks=["fgsm"], attacker_epochs=1, cache_dir=str(tmp_path), window_start=1)
    transfer.attacks = {"a": DrawsPerBatch()}
    real, sizes = adversarial_sets.set_path, []
    monkeypatch.setattr(adversarial_sets, "set_path", lambda *a: sizes.append(a[-1]) or real(*a))
    speeds = plan.Speeds(1.0, 1.0, 1.0)
    for device in ("cpu", "cuda"):
        plan.stages(data, transfer, 1, 1, speeds, torch.device(device))
    assert sizes == [100, 1000], "the default attack batch of the run's device, as load_or_make picks it"


def test_the_plan_counts_white_box_attacks_in_window_epochs_and_what_a_resumed_run_has_left(mnist_dir, tmp_path):
    from advlit.study import plan

    data = MNISTDataModule(str(mnist_dir), cache_dir=str(tmp_path), **LIGHT)  # 600 train, 200 test images
    speeds = plan.Speeds(train_batch=1.0, grad_pass=0.01, forward=0.001)

    def defended(world_size: int = 1, window_start: int = 3, **whitebox) -> plan.Stage:
        transfer = TransferEvaluation(attacks=["fgsm"], attacker_epochs=1, cache_dir=str(tmp_path),
                                      window_start=window_start, **whitebox)  # fmt: skip
        return plan.stages(data, transfer, 5, world_size, speeds, torch.device("cpu"))[-1]

    none, both = defended(whitebox_attacks=[]), defended(whitebox_attacks=["fgsm", "pgd"], whitebox_images=50)
    extra = [b - a for a, b in zip(none.epoch_seconds, both.epoch_seconds, strict=True)]
    pgd_steps = TransferEvaluation(whitebox_attacks=["pgd"]).whitebox["pgd"].steps
    per_epoch = 50 * ((1 + pgd_steps) * 0.01 + 2 * 0.001)  # FGSM's pass and PGD's, then a forward each to score
    assert extra[:2] == [0.0, 0.0] and extra[2:] == pytest.approx([per_epoch] * 3), "window epochs 3-5 only"
    assert both.seconds == pytest.approx(sum(both.epoch_seconds))
    resumed = plan.remaining(both, plan.epochs_done("epoch=3-step=24.ckpt"), 5)  # 4 epochs behind it
    assert resumed.seconds == pytest.approx(both.epoch_seconds[4]) and resumed.name.endswith(", 4 done")
    assert plan.remaining(plan.Stage("net", False, 100.0), 4, 5).seconds == pytest.approx(20.0), "no per-epoch split"
    two_ranks = defended(2, whitebox_attacks=["fgsm", "pgd"], whitebox_images=50)
    assert two_ranks.epoch_seconds == pytest.approx([s / 2 for s in both.epoch_seconds]), "each rank does half"
    with pytest.raises(ConfigError, match="epoch window 6-5"):
        defended(window_start=6)


@pytest.mark.parametrize(
    "attack",
    [FGSM(0.2), JSMA(seed=3), CarliniWagnerL2(c_init=2.0, binary_search_steps=2, max_iterations=10, snap=0.002)],
    ids=["fgsm", "jsma", "cw"],
)
def test_a_set_killed_mid_way_resumes_from_its_saved_parts(tmp_path, monkeypatch, caplog, attack):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x, y = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    monkeypatch.setattr(adversarial_sets, "PART_IMAGES", 4)  # parts 0-4, 4-8, 8-10
    real_run, calls = adversarial_sets.run_attack, []

    def killed_at_the_third_part(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    def make():
        return adversarial_sets.load_or_make(model, "net", "a", attack, "train", x, y, "d", str(tmp_path), 3, False)

    monkeypatch.setattr(adversarial_sets, "run_attack", killed_at_the_third_part)
    with pytest.raises(KeyboardInterrupt), caplog.at_level("INFO", logger=adversarial_sets.__name__):
        make()
    made = [r.getMessage() for r in caplog.records if "made in" in r.getMessage()]
    assert len(made) == 2 and "part 1/3 (images 0-4) made in" in made[0], "each part made logs a line"
    assert "; 2 to make, about" in made[0] and "; 1 to make, about" in made[1], "with the parts left and an ETA"
    _, path = adversarial_sets.set_path("net", "a", attack, "train", "d", str(tmp_path))
    assert not path.exists() and adversarial_sets.parts_done(path, 10) == 8
    stale = adversarial_sets.parts_folder(path) / "4-8.pt"
    part = torch.load(stale, weights_only=True)
    save_tensors(part["tensors"], {**part["meta"], "params": "another attack's"}, stale)
    calls.clear()
    monkeypatch.setattr(adversarial_sets, "run_attack", lambda *a, **k: calls.append(len(a[2])) or real_run(*a, **k))
    with pytest.warns(UserWarning, match="corrupt or stale"):
        x_adv = make().x_adv
    assert calls == [4, 2], "only the stale and the missing part are made"
    assert torch.equal(x_adv, real_run(attack, model, x, y, 10, False)), "the parts give the one-pass set"
    assert cache.made_seconds(path) is not None, "the set notes its making time"
    assert make().made_s == cache.made_seconds(path), "a loaded set reports its noted making time"
    assert path.exists() and not adversarial_sets.parts_folder(path).exists(), "parts go once the set is whole"


def test_a_surrogate_killed_mid_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    from advlit.data.augment import Augment
    from advlit.models.classifier import Classifier

    torch.manual_seed(0)
    x, y = torch.rand(96, 1, 28, 28), torch.randint(0, 10, (96,))
    spec = surrogate.SurrogateSpec(epochs=3, batch_size=32, lr=1e-3)

    def train(cache):
        return surrogate.load_or_train(spec, x, y, Augment(), "d", str(cache), progress=False)

    epochs = []

    def killed_in_the_third_epoch(module):
        epochs.append(module.current_epoch)
        if module.current_epoch == 2 and len(epochs) == 3:
            raise RuntimeError("killed")

    monkeypatch.setattr(Classifier, "on_train_epoch_start", killed_in_the_third_epoch, raising=False)
    with pytest.raises(RuntimeError, match="killed"):
        train(tmp_path / "killed")
    (notes,) = (tmp_path / "killed" / "surrogates").glob("*.training")
    first_part = cache.made_seconds(notes / "training")
    made = train(tmp_path / "killed")
    resumed = made.net
    assert made.weights == cache.weights_digest(resumed) == train(tmp_path / "killed").weights, "trained, then loaded"
    assert epochs == [0, 1, 2, 2], "the resumed training runs the third epoch only"
    (path,) = (tmp_path / "killed" / "surrogates").glob("*.pt")
    assert cache.made_seconds(path) > first_part > 0, "its making time adds both parts' training"
    assert train(tmp_path / "killed").made_s == cache.made_seconds(path), "a loaded surrogate reports its note"
    whole = train(tmp_path / "whole").net
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs from the uninterrupted training")
    assert not list((tmp_path / "killed" / "surrogates").glob("*.training")), "its checkpoints go once it is cached"


def test_a_cached_surrogate_file_loads_as_its_network_in_eval_mode(tmp_path):
    from advlit.data.augment import Augment

    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    spec = surrogate.SurrogateSpec(epochs=1, batch_size=32)
    made = surrogate.load_or_train(spec, x, y, Augment(), "d", str(tmp_path), progress=False)
    (path,) = (tmp_path / "surrogates").glob("*.pt")
    net = surrogate.cached_network(path)
    assert not net.training and cache.weights_digest(net) == made.weights
    torch.testing.assert_close(net(x), made.net.eval()(x))


def test_mix_has_one_unaugmented_copy_per_attack(mnist_dir, tmp_path):
    data = MNISTDataModule(str(mnist_dir), train_attacks=["fgsm", "pgd"], cache_dir=str(tmp_path), **LIGHT)
    data.setup("fit")
    x, y, clean = data.train_tensors()
    n = len(data.train_y)
    assert len(x) == 3 * n and int(clean.sum()) == n and clean[:n].all()
    assert torch.equal(y, data.train_y.repeat(3))
    assert not torch.equal(x[n : 2 * n], x[:n]) and not torch.equal(x[n : 2 * n], x[2 * n :])
    batch = (x[n - 3 : n + 3], y[n - 3 : n + 3], clean[n - 3 : n + 3], 7)
    out, _ = data.on_after_batch_transfer(batch, 0)
    assert torch.equal(out[3:], x[n : n + 3]), "adversarial images are never augmented"
    assert not torch.equal(out[:3], x[n - 3 : n])


def test_surrogates_and_sets_come_from_the_cache(mnist_dir, tmp_path, counters):
    make = lambda **kw: MNISTDataModule(str(mnist_dir), cache_dir=str(tmp_path), **{**LIGHT, **kw})  # noqa: E731
    first = make(train_attacks=["fgsm"])
    first.setup("fit")
    assert counters == {"train": 1, "attack": 1}
    again = make(train_attacks=["fgsm"])
    again.setup("fit")
    assert counters == {"train": 1, "attack": 1}, "nothing is made twice"
    assert torch.equal(again.train_adv["fgsm"], first.train_adv["fgsm"])
    make(train_attacks=["fgsm"], attack_params={"fgsm": {"eps": 0.1}}).setup("fit")
    assert counters == {"train": 1, "attack": 2}, "a new attack parameter makes a new set"
    make(train_attacks=["fgsm"], source_seed=5).setup("fit")
    assert counters == {"train": 2, "attack": 3}, "a new source network makes new sets"
    for path in (tmp_path / "adversarial").glob("*.pt"):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.warns(UserWarning, match="corrupt or stale"):
        make(train_attacks=["fgsm"]).setup("fit")
    assert counters == {"train": 2, "attack": 4}, "a truncated set is made again"


def test_attacker_and_defender_never_share_networks_or_examples(mnist_dir, tmp_path):
    data = MNISTDataModule(str(mnist_dir), train_attacks=["fgsm"], cache_dir=str(tmp_path), **LIGHT)
    data.setup("fit")
    args = (data.train_x, data.train_y, data.augmenter, data.train_digest, str(tmp_path), False)
    defender, d_key, *_ = surrogate.load_or_train(data.source_spec, *args)
    callback = TransferEvaluation(attacks=["fgsm"], attacker_epochs=1, cache_dir=str(tmp_path))
    attacker, a_key, *_ = surrogate.load_or_train(callback.specs["A"][0], *args)
    assert d_key != a_key and callback.specs["A"][0].seed != data.source_spec.seed
    d_set = FGSM()(defender, data.train_x[:100], data.train_y[:100])
    a_set = FGSM()(attacker, data.train_x[:100], data.train_y[:100])
    assert (d_set != a_set).flatten(1).any(1).float().mean() > 0.5, "the two networks' examples differ"
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "adversarial").glob("*.pt")) == ["train"]


@pytest.fixture(scope="module")
def smoke_run(mnist_dir, tmp_path_factory):
    """A whole fgsm_jsma smoke run on the fixture data: (run folder, its cache)."""
    root = tmp_path_factory.mktemp("smoke")
    os.chdir(root)
    assert run_cli(*smoke_args(mnist_dir, root / "cache", "fgsm_jsma.yaml"), "--transfer.quantize", "true") == 0
    (run,) = (root / "tb_logs" / "advlit").iterdir()
    return run, root / "cache"


def test_smoke_run_writes_window_metrics(smoke_run):
    run, _ = smoke_run
    record = json.loads((run / "metrics.json").read_text())
    assert record["window"] == [2, 3] and sorted(record["per_epoch"]) == ["1", "2", "3"]
    sets = {"clean"} | {f"A/{a}{s}" for a in ("fgsm", "jsma", "cw") for s in ("", "_noise")}
    eight_bit = {f"A/{a}_8bit" for a in ("fgsm", "jsma", "cw")}
    assert set(record["max"]) == sets | eight_bit | {"A/worst", "whitebox/fgsm", "whitebox/pgd"}
    for epoch, accs in record["per_epoch"].items():  # worst case: right under every attack, so at most each
        assert accs["A/worst"] <= min(accs[f"A/{a}"] for a in ("fgsm", "jsma", "cw"))
        assert ("whitebox/pgd" in accs) == (epoch != "1"), "white-box attacks run in the window (2-3) only"
        for name in ("A/worst", "whitebox/fgsm", "whitebox/pgd"):
            if name in accs:
                assert accs[name] * 200 == pytest.approx(round(accs[name] * 200)), name  # counts of 200 images
    assert record["whitebox"]["images"] == 200 and set(record["whitebox"]["attacks"]) == {"fgsm", "pgd"}
    (twin,) = record["gradient_masking"]  # only FGSM is both an attacker's and a white-box attack here
    flag = record["gradient_masking"]["A/fgsm"]
    assert twin == "A/fgsm" and flag["white_box_median"] == record["median"]["whitebox/fgsm"]
    assert flag["flag"] == (flag["black_box_median"] < flag["white_box_median"] - 0.02)
    assert record["whitebox"]["masking_margin"] == 0.02 and record["timings_s"]["whitebox_s"] > 0
    made = record["made_s"]
    assert all(made[k] > 0 for k in ("defender_surrogate_s", "defender_jsma_train_set_s", "attacker_A_cw_test_set_s"))
    e2, e3 = record["per_epoch"]["2"], record["per_epoch"]["3"]
    for name in sets:  # by hand: the window 2-3 has an even length, its median is the mean of the two
        assert record["max"][name] == max(e2[name], e3[name])
        assert record["median"][name] == pytest.approx((e2[name] + e3[name]) / 2, abs=1e-12)
        assert record["per_epoch"]["1"][name] * 200 == pytest.approx(round(record["per_epoch"]["1"][name] * 200))
    assert record["defender"]["train_attacks"] == ["fgsm", "jsma"]
    assert record["attackers"]["A"]["spec"]["role"] == "attacker"
    assert record["attackers"]["A"]["spec"]["lr"] == record["defender"]["source"]["lr"] == 1e-4, "model.lr is linked"
    assert record["seed_everything"] == "0", "surrogate training does not overwrite the run's seed"
    assert len(record["provenance"]["git_commit"]) == 40 and record["provenance"]["versions"]["torch"]
    assert record["provenance"]["machine"]["cores"] >= 1 and "cpu" in record["provenance"]["machine"]
    assert record["torch_threads"] >= 1
    assert record["float_settings"] == {"device": "cpu", "dtype": "float32", "tf32": False, "adam": "default"}
    assert "train_attacks:" in record["config"], "the resolved config travels with the numbers"
    assert {"defender_surrogate_s", "attacker_A_cw_test_set_s", "training_s"} <= set(record["timings_s"])
    quality = record["set_quality"]
    assert set(quality) == (sets - {"clean"}) | eight_bit | {"defender/fgsm", "defender/jsma"}
    assert quality["A/fgsm_8bit"]["linf"]["mean"] == pytest.approx(0.2, abs=0.5 / 255)  # eps 0.2 = 51/255
    assert quality["A/fgsm"]["linf"]["mean"] == pytest.approx(0.2, abs=1e-6)
    assert quality["A/fgsm_noise"]["linf"]["mean"] == pytest.approx(0.2, abs=1e-6)
    matched = {"fgsm": ("linf",), "jsma": ("l0", "l2", "linf"), "cw": ("l0", "l2")}
    for attack, norms in matched.items():  # each control spends its attack's budget in these norms
        spent, noise = quality[f"A/{attack}"]["budget"], quality[f"A/{attack}_noise"]["budget"]
        for norm in norms:  # the smoke C&W (no snap) leaves some changes of ~1e-6 that a control at that
            # L2 cannot repeat on pixels near 0.5 (below float32's resolution there): L0 within 2%
            rel = 0.02 if (attack, norm) == ("cw", "l0") else 1e-4
            assert noise[norm] == pytest.approx(spent[norm], rel=rel), (attack, norm)
    for name, hist in record["predicted_classes_last_epoch"].items():
        assert len(hist) == 10 and sum(hist) == 200, name
    (events,) = run.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"val/acc/clean", "val/acc/A/fgsm", "val/acc/A/fgsm_noise", "val/acc/A/cw", "window/median/A/fgsm"} <= tags
    assert {"val/acc/A/worst", "val/acc/whitebox/fgsm", "val/acc/whitebox/pgd", "window/median/A/worst"} <= tags
    assert acc.Scalars("window/median/A/jsma")[-1].value == pytest.approx(record["median"]["A/jsma"])
    assert acc.Tags()["images"], "an example grid is logged"
    assert "hp_metric" not in tags
    hparams = acc.summary_metadata.get("_hparams_/session_start_info")
    assert hparams is not None, "the HParams tab gets the config and the window medians"
    from tensorboard.plugins.hparams import plugin_data_pb2

    info = plugin_data_pb2.HParamsPluginData.FromString(hparams.plugin_data.content).session_start_info
    assert {"data.train_attacks", "transfer.window_start", "trainer.max_epochs"} <= set(info.hparams)
    assert not any(k.startswith("_") or "._" in k for k in info.hparams)
    assert not any(tag.startswith("hp/") for tag in tags), "the HParams metrics are the window/median scalars"
    layout = acc.summary_metadata.get("custom_scalars__config__")
    assert layout is not None, "Custom Scalars: each attack beside its matched noise"


def test_the_run_summary_puts_each_attack_beside_its_noise(smoke_run):
    from advlit.study.run_summary import summary_lines

    run, _ = smoke_run
    record = json.loads((run / "metrics.json").read_text())
    lines = summary_lines(record)
    row = next(line for line in lines if line.startswith("A/jsma "))
    median, noise = 100 * record["median"]["A/jsma"], 100 * record["median"]["A/jsma_noise"]
    assert f"{median:.1f}" in row and f"{noise:.1f}" in row and f"{median - noise:+.1f}" in row
    assert not any(line.startswith("A/jsma_noise") for line in lines), "a control is a column, not a row"
    assert any(line.startswith("A/worst") for line in lines) and any("masking" in line for line in lines)


def test_cache_entries_say_the_device_they_were_made_on_and_load_on_any(smoke_run, tmp_path):
    _, cache = smoke_run
    files = list(cache.rglob("surrogates/*.pt")) + list(cache.rglob("adversarial/*.pt"))
    assert files
    for path in files:
        meta = torch.load(path, weights_only=True)["meta"]
        assert meta["made_on"] == {"device": "cpu", "dtype": "float32", "tf32": False, "adam": "default"}, path.name
    stored = torch.load(files[0], weights_only=True)
    gpu_made = tmp_path / files[0].name
    save_tensors(stored["tensors"], {**stored["meta"], "made_on": {"device": "cuda", "tf32": False}}, gpu_made)
    assert load_tensors(gpu_made, stored["meta"]) is not None, "a GPU-made entry serves a CPU run"


def test_cached_controls_match_their_sets_image_by_image(smoke_run, mnist_dir):
    from advlit.data import load_mnist

    _, cache = smoke_run
    x = load_mnist(mnist_dir, train=False)[0][:200].flatten(1)  # the smoke run's test images
    norms = {
        "fgsm": lambda d: d.abs().amax(1),
        "jsma": lambda d: (d != 0).sum(1).double(),
        "cw": lambda d: d.norm(dim=1),
    }
    for path in (cache / "adversarial").glob("test-*.pt"):
        stored = torch.load(path, weights_only=True)
        attack = stored["meta"]["attack"]
        adv, noise = stored["tensors"]["x_adv"].flatten(1), stored["tensors"]["x_noise"].flatten(1)
        assert torch.allclose(norms[attack](noise - x), norms[attack](adv - x), rtol=1e-3, atol=1e-5), attack
        assert not torch.equal(noise, adv)
    splits = sorted(p.name.split("-")[0] for p in (cache / "adversarial").glob("*.pt"))
    assert splits == ["test"] * 3 + ["train"] * 2
    train = torch.load(next((cache / "adversarial").glob("train-*.pt")), weights_only=True)
    assert set(train["tensors"]) == {"x_adv"}, "no control is made for a training set"


def test_clean_accuracy_matches_the_module_metric(smoke_run):
    run, _ = smoke_run
    record = json.loads((run / "metrics.json").read_text())
    (events,) = run.glob("events.out.tfevents.*")
    logged = [s.value for s in EventAccumulator(str(events)).Reload().Scalars("val/acc/clean")]
    assert logged == pytest.approx([record["per_epoch"][str(e)]["clean"] for e in (1, 2, 3)])


def test_resume_keeps_every_epoch_in_the_window(smoke_run, mnist_dir, tmp_path, monkeypatch, capsys):
    run, cache = smoke_run
    resumed = tmp_path / "logs" / "advlit" / "killed"
    shutil.copytree(run, resumed)  # a run in its own folder, killed after epoch 3
    (resumed / "metrics.json").unlink()
    (ckpt,) = (resumed / "checkpoints").glob("*.ckpt")
    monkeypatch.chdir(tmp_path)
    here = [*smoke_args(mnist_dir, cache, "fgsm_jsma.yaml"), "--trainer.logger.init_args.save_dir", "logs",
            "--trainer.logger.init_args.version", "killed", "--transfer.quantize", "true"]  # fmt: skip
    assert run_cli(*here, "--trainer.max_epochs", "4") == 2, "a new run may not log over another"
    assert "holds a run already" in capsys.readouterr().err
    outside = tmp_path / "elsewhere.ckpt"
    shutil.copy(ckpt, outside)
    assert run_cli(*here, "--trainer.max_epochs", "4", "--ckpt_path", str(outside)) == 2, "not this folder's run"
    assert "holds a run already" in capsys.readouterr().err
    # (Lightning itself takes the model's and data's settings from the checkpoint; the rest is checked here)
    assert run_cli(*here, "--trainer.max_epochs", "4", "--ckpt_path", str(ckpt), "--transfer.window_start", "1") == 2
    assert "had other settings (transfer.window_start" in capsys.readouterr().err
    tampered = resumed / "checkpoints" / "tampered.ckpt"
    state = torch.load(ckpt, weights_only=False)
    state["callbacks"]["TransferEvaluation"]["set_digests"]["A/fgsm"] = "a set made on other weights"
    torch.save(state, tampered)
    assert run_cli(*here, "--trainer.max_epochs", "4", "--ckpt_path", str(tampered)) == 2
    assert "test sets A/fgsm differ from those this run's first epochs" in capsys.readouterr().err
    tampered.unlink()
    monkeypatch.setattr(transfer_mod, "process_provenance", lambda: {"git_commit": "at the start"})
    monkeypatch.setattr("advlit.runtime.provenance.provenance", lambda: {"git_commit": "changed while it ran"})
    assert run_cli(*here, "--trainer.max_epochs", "4", "--ckpt_path", str(ckpt)) == 0
    record = json.loads((resumed / "metrics.json").read_text())
    assert record["provenance"] == {"git_commit": "at the start"}, "the code the run started from"
    assert len(record["provenance_earlier_parts"]) == 1 and record["provenance_earlier_parts"][0]["git_commit"]
    before = json.loads((run / "metrics.json").read_text())
    assert sorted(record["per_epoch"]) == ["1", "2", "3", "4"] and record["window"] == [2, 4]
    assert record["per_epoch"]["3"] == before["per_epoch"]["3"]
    assert record["resumed_after_epochs"] == [3]
    earlier = before["timings_s"]["training_s"]
    assert record["timings_s"]["training_s"] > earlier, "the resumed run's time adds the first part's"
    assert "max_epochs: 4" in (resumed / "config.yaml").read_text(), "the resumed run rewrote its config"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--transfer.window_start", "7"], "epoch window 7-3"),
        (["--transfer.window_end", "9"], "epoch window 2-9"),
        (["--trainer.max_epochs", "0"], "trainer.max_epochs=0 must be >= 1"),
        (["--transfer.attackers", "[{name: A, seed: 1}]"], "same network as the defender's source"),
        (["--transfer.attackers", "[{name: A, seed: 1}]", "--transfer.attacker_epochs", "2"], "defender's source"),
        (
            [
                "--data.train_attacks",
                "[]",
                "--seed_everything",
                "4",
                "--data.seed",
                "4",
                "--transfer.attackers",
                "[{name: A, seed: 4}]",
            ],
            "same network as the defended one",
        ),
        (["--transfer.attackers", "[{name: A}, {name: A, seed: 3}]"], "distinct names"),
        (["--transfer.attackers", "[{name: clean}]"], "attacker name 'clean'"),
        (["--data.attack_params", "{bogus: {eps: 0.1}}"], "unknown attacks ['bogus']"),
        (["--data.attack_params", "{fgsm: {epsilon: 0.1}}"], "attack 'fgsm' with {'epsilon': 0.1}"),
        (["--data.attack_params", "{cw: {confidence: abc}}"], "attack 'cw'"),
        (["--transfer.eval_batch_size", "0"], "transfer.eval_batch_size=0"),
        (["--data.attack_batch_size", "0"], "attack_batch_size=0"),
        (["--data.attack_batch_size", "-5"], "attack_batch_size=-5"),
        (["--model.lr", "-0.1"], "model.lr=-0.1"),
        (["--model.weight_decay", "-1"], "model.weight_decay=-1"),
        (["--data.train_attacks", "[deepfool]"], "deepfool"),
        (["--model.arch", "vgg"], "vgg"),
    ],
)
def test_bad_study_settings_fail_before_training(mnist_dir, tmp_path, capsys, extra, message, monkeypatch, counters):
    monkeypatch.chdir(tmp_path)
    assert run_cli(*smoke_args(mnist_dir, tmp_path, "fgsm.yaml"), *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert counters == {"train": 0, "attack": 0}


def test_bad_datamodule_attack_list():
    with pytest.raises(ConfigError, match="twice"):
        MNISTDataModule(train_attacks=["fgsm", "fgsm"])


def _fit(mnist_dir: Path, root: Path, cache: Path, devices: int, batch: int) -> dict:
    """An advlit fit in a fresh process (as DDP launches it); returns its metrics.json."""
    root.mkdir()
    args = smoke_args(mnist_dir, cache, "fgsm.yaml") + [
        "--data.augment", "false", "--transfer.attackers", "[{name: Ap, augment: false}]",
        "--transfer.attacks", "[fgsm, jsma]",
        "--data.batch_size", str(batch), "--data.eval_batch_size", "64", "--trainer.accelerator", "cpu",
        "--data.test_limit", "199",
        "--trainer.devices", str(devices), "--trainer.strategy", "ddp" if devices > 1 else "auto",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "advlit", *args], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (root / "tb_logs" / "advlit").iterdir()
    return {**json.loads((run / "metrics.json").read_text()), "made": proc.stderr.count("advlit: making the ")}


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(mnist_dir, tmp_path):
    cache = tmp_path / "cache"
    two = _fit(mnist_dir, tmp_path / "two", cache, devices=2, batch=100)
    one = _fit(mnist_dir, tmp_path / "one", cache, devices=1, batch=100)  # data.batch_size is the global batch
    assert two["world_size"] == 2 and one["world_size"] == 1
    (ckpt_two,), (ckpt_one,) = (tmp_path / "two").rglob("*.ckpt"), (tmp_path / "one").rglob("*.ckpt")
    steps = [torch.load(c, weights_only=False, map_location="cpu")["global_step"] for c in (ckpt_two, ckpt_one)]
    assert steps[0] == steps[1] > 0, "as many optimiser steps on 2 processes as on 1, at the same global batch"
    assert two["made"] == 3 and one["made"] == 0, "each set is made once, by one process, then shared"
    assert two["test_images"] == one["test_images"] == 199  # an odd count: the two shards differ in size
    for epoch, accs in two["per_epoch"].items():  # float noise in training may flip an image or two
        for name, acc in accs.items():
            assert abs(round(acc * 199) - round(one["per_epoch"][epoch][name] * 199)) <= 2, (epoch, name)
    assert len(list((cache / "adversarial").glob("*.pt"))) == 3
    # exact counts: the DDP run's last-epoch numbers equal its final weights scored here in one process
    from advlit.data import load_mnist
    from advlit.models import Classifier

    (ckpt,) = (tmp_path / "two").rglob("*.ckpt")
    module = Classifier.load_from_checkpoint(ckpt, map_location="cpu").eval()
    x, y = (t[:199] for t in load_mnist(mnist_dir, train=False))
    sets = {"clean": x}
    for path in (cache / "adversarial").glob("test-*.pt"):
        stored = torch.load(path, weights_only=True)
        sets[f"Ap/{stored['meta']['attack']}"] = stored["tensors"]["x_adv"]
        sets[f"Ap/{stored['meta']['attack']}_noise"] = stored["tensors"]["x_noise"]
    last = two["per_epoch"][str(two["epochs_run"])]
    assert set(sets) | {"Ap/worst", "whitebox/fgsm", "whitebox/pgd"} == set(last)
    correct = {}
    with torch.no_grad():
        for name, images in sets.items():
            pred = module(images).argmax(1)
            correct[name] = pred == y
            assert round(last[name] * 199) == int((pred == y).sum()), name
            assert two["predicted_classes_last_epoch"][name] == torch.bincount(pred, minlength=10).tolist(), name
    assert round(last["Ap/worst"] * 199) == int((correct["Ap/fgsm"] & correct["Ap/jsma"]).sum())
    from advlit.attacks import build_attack

    for name in ("fgsm", "pgd"):  # white-box on each rank's shard of the 199 images, summed
        x_adv = build_attack(name)(module, x, y)
        with torch.no_grad():
            right = int((module(x_adv).argmax(1) == y).sum())
        assert abs(round(last[f"whitebox/{name}"] * 199) - right) <= 1, name  # a gradient sign may flip


def test_a_cache_that_cannot_be_written_is_one_line(mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    assert run_cli(*smoke_args(mnist_dir, blocked, "fgsm.yaml")) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and str(blocked) in err and "Traceback" not in err


def test_a_complete_read_only_cache_is_used_without_writing(mnist_dir, tmp_path, monkeypatch, counters):
    from advlit.study import cache

    data = MNISTDataModule(str(mnist_dir), train_attacks=["fgsm"], cache_dir=str(tmp_path / "c"), **LIGHT)
    data.setup("fit")
    real_open = open

    def read_only(file, mode="r", *args, **kwargs):  # as on a read-only file system (root ignores chmod)
        if any(m in mode for m in "wax+"):
            raise PermissionError(30, "Read-only file system")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(cache, "open", read_only, raising=False)
    again = MNISTDataModule(str(mnist_dir), train_attacks=["fgsm"], cache_dir=str(tmp_path / "c"), **LIGHT)
    again.setup("fit")
    assert torch.equal(again.train_adv["fgsm"], data.train_adv["fgsm"])
    assert counters == {"train": 1, "attack": 1}, "everything came from the read-only cache"
    with pytest.raises(ConfigError, match="cannot be written"):  # a missing entry cannot be made there
        MNISTDataModule(str(mnist_dir), train_attacks=["fgsm"], source_seed=9, cache_dir=str(tmp_path / "c"),
                        **LIGHT).setup("fit")  # fmt: skip


class FakeStrategy:
    """Two ranks' collectives, seen from one rank: rank 0's digests broadcast, flags summed."""

    def __init__(self, rank0: dict, other_flag: float) -> None:
        self.rank0, self.other_flag, self.root_device = rank0, other_flag, torch.device("cpu")

    def broadcast(self, obj, src=0):
        return self.rank0

    def reduce(self, tensor, reduce_op="sum"):
        return tensor + self.other_flag


class FakeTrainer:
    """A rank of a two-process run, as check_ranks_agree sees it."""

    def __init__(self, rank: int, rank0: dict, other_flag: float = 0.0) -> None:
        self.world_size, self.global_rank, self.strategy = 2, rank, FakeStrategy(rank0, other_flag)


def test_ranks_holding_different_sets_stop_together_with_one_line():
    from advlit.study.rank_check import check_ranks_agree

    sets = {"A/fgsm": "aa", "A/jsma": "bb"}
    check_ranks_agree(FakeTrainer(1, sets), dict(sets), "test sets")  # the same: nothing
    with pytest.raises(ConfigError, match=r"rank \(1\) differs on A/jsma"):
        check_ranks_agree(FakeTrainer(1, sets), {**sets, "A/jsma": "cc"}, "test sets")
    with pytest.raises(ConfigError, match="the ranks hold different test sets"):  # rank 0 stops too
        check_ranks_agree(FakeTrainer(0, sets, other_flag=1.0), dict(sets), "test sets")


def test_an_ensemble_attacker_attacks_the_mean_of_its_members_logits():
    from advlit.study.transfer import Attacker, Ensemble, member_specs

    specs = member_specs(Attacker("E", True, 2, [{"seed": 2}, {"seed": 3, "augment": False}]), "lenet5", 10, 5, 1e-3)
    assert [(s.seed, s.augment) for s in specs] == [(12, True), (13, False)], "each member's own, offset like any"
    with pytest.raises(ConfigError, match="the same network"):
        member_specs(Attacker("E", True, 2, [{"seed": 2}, {}]), "lenet5", 0, 5, 1e-3)
    with pytest.raises(ConfigError, match="member keys \\['depth'\\] unknown"):
        member_specs(Attacker("E", True, 2, [{"depth": 3}]), "lenet5", 0, 5, 1e-3)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.rand(5, 4)
    assert torch.allclose(Ensemble([a, b])(x), (a(x) + b(x)) / 2)


def test_an_ensemble_attacker_runs_end_to_end_and_no_member_may_leak(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ensemble = "[{name: E, members: [{seed: 2}, {seed: 3}]}]"
    args = [*smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml"), "--transfer.attacks", "[fgsm]",
            "--trainer.max_epochs", "2", "--transfer.window_start", "1",
            "--transfer.whitebox_attacks", "[]"]  # fmt: skip
    assert run_cli(*args, "--transfer.attackers", ensemble) == 0
    (metrics,) = (tmp_path / "tb_logs").rglob("metrics.json")
    record = json.loads(metrics.read_text())
    assert [m["seed"] for m in record["attackers"]["E"]["members"]] == [2, 3]
    assert len(list((tmp_path / "cache" / "surrogates").glob("attacker-*.pt"))) == 2
    assert {"E/fgsm", "E/fgsm_noise", "E/worst"} <= set(record["median"])
    assert record["set_quality"]["E/fgsm"]["success"] > 0, "white-box success on the ensemble it was made on"
    leaking = "[{name: E, members: [{seed: 2}, {seed: 1}]}]"  # seed 1 with augmentation: the source network
    assert run_cli(*args, "--transfer.attackers", leaking) == 2
    assert "same network as the defender's source" in capsys.readouterr().err


def test_ensemble_adversarial_training_splits_each_copy_among_its_sources(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml"), "--trainer.max_epochs", "1",
            "--transfer.window_start", "1", "--transfer.attacks", "[]",
            "--transfer.whitebox_attacks", "[]"]  # fmt: skip
    assert run_cli(*args, "--data.extra_source_seeds", "[5, 6]") == 0
    (metrics,) = (tmp_path / "tb_logs").rglob("metrics.json")
    record = json.loads(metrics.read_text())
    assert record["defender"]["extra_source_seeds"] == [5, 6]
    assert len(list((tmp_path / "cache" / "surrogates").glob("defender-*.pt"))) == 3, "three source networks"
    parts = sorted(torch.load(p, weights_only=True)["meta"]["shape"][0]
                   for p in (tmp_path / "cache" / "adversarial").glob("train-fgsm-*.pt"))  # fmt: skip
    assert parts == [200, 200, 200], "each source makes the copies of every third image (600 in the fixture)"
    data = MNISTDataModule(data_dir=str(mnist_dir), download=False, cache_dir=str(tmp_path / "cache"),
                           progress=False, train_limit=1000, source_epochs=5, train_attacks=["fgsm"],
                           extra_source_seeds=[5, 6])  # fmt: skip
    data.setup("fit")  # every set from the cache
    cached = [torch.load(p, weights_only=True)["tensors"]["x_adv"]
              for p in (tmp_path / "cache" / "adversarial").glob("train-fgsm-*.pt")]  # fmt: skip
    matches = [[j for j, x in enumerate(cached) if torch.equal(x, data.train_adv["fgsm"][i::3])] for i in range(3)]
    assert sorted(m for ms in matches for m in ms) == [0, 1, 2], f"image i's copy from one source each: {matches}"
    assert {f"defender/fgsm/source{j}" for j in range(3)} <= set(record["set_quality"])
    with pytest.raises(ConfigError, match="repeats a source"):
        MNISTDataModule(train_attacks=["fgsm"], source_seed=1, extra_source_seeds=[1])


def test_the_extra_sources_move_with_their_offset_and_may_not_meet_the_source():
    data = MNISTDataModule(train_attacks=["fgsm"], source_seed=1001, extra_source_seeds=[5, 6],
                           extra_source_seed_offset=1000)  # fmt: skip
    assert [spec.seed for spec in data.source_specs] == [1001, 1005, 1006]
    with pytest.raises(ConfigError, match="repeats a source"):
        MNISTDataModule(train_attacks=["fgsm"], source_seed=1005, extra_source_seeds=[5], extra_source_seed_offset=1000)


def test_the_plan_counts_an_iterative_attack_s_steps_as_its_gradient_passes():
    from advlit.attacks import build_attack
    from advlit.study.plan import passes_per_image

    assert [passes_per_image(build_attack(n, steps=7)) for n in ("pgd", "mifgsm", "di_fgsm", "ti_fgsm")] == [7.0] * 4
    assert passes_per_image(build_attack("fgsm")) == 1.0


def test_the_frontier_in_a_smoke_run_ensemble_attacker_di_ti_and_a_torchattacks_attack(
    mnist_dir, tmp_path, monkeypatch
):
    """The frontier's pieces in one run: ensemble adversarial training, attackers A and an ensemble,
    MI-, DI-, TI-FGSM (and a torchattacks attack where the peers extra is installed) with their controls."""
    monkeypatch.chdir(tmp_path)
    attacks = ["fgsm", "mifgsm", "di_fgsm", "ti_fgsm"]
    params = "{di_fgsm: {steps: 3}, ti_fgsm: {steps: 3}, mifgsm: {steps: 3}}"
    try:
        import torchattacks  # noqa: F401

        attacks.append("torchattacks")
        params = params[:-1] + ", torchattacks: {attack: MIFGSM, params: {eps: 0.2, steps: 3}, norm: changes}}"
    except ImportError:
        pass
    args = [*smoke_args(mnist_dir, tmp_path / "cache", "fgsm.yaml"), "--data.extra_source_seeds", "[5]",
            "--transfer.attacks", json.dumps(attacks), "--data.attack_params", params,
            "--transfer.attackers", "[{name: A, seed: 2}, {name: E, seed: 2, members: [{seed: 2}, {seed: 3}]}]",
            "--trainer.max_epochs", "1", "--transfer.window_start", "1",
            "--transfer.whitebox_attacks", "[]"]  # fmt: skip
    assert run_cli(*args) == 0
    (metrics,) = (tmp_path / "tb_logs").rglob("metrics.json")
    record = json.loads(metrics.read_text())
    for attacker in ("A", "E"):
        for attack in attacks:
            assert {f"{attacker}/{attack}", f"{attacker}/{attack}_noise"} <= set(record["median"])
            assert f"{attacker}/{attack}" in record["attack_minus_noise_median"]
    assert record["defender"]["extra_source_seeds"] == [5]
    quality = record["set_quality"]
    budget = quality["E/di_fgsm"]["budget"]
    assert quality["E/di_fgsm_noise"]["budget"]["l2"] == pytest.approx(budget["l2"], rel=1e-3), "DI's own changes"
