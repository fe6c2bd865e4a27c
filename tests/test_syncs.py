"""The training step and the epoch's scoring read nothing back from the device.

The meta device stands in for a GPU whose memory the host cannot read: any read of device data
there (``.item()``, ``bool()``, a boolean-mask gather, ``nonzero``) raises, so these tests fail on
the first value that comes back. Blocking copies to the device pass on meta; the CUDA test under
torch's sync debug mode (tests/test_cuda.py) catches those.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from advlit.data.augment import Augment
from advlit.data.tensor_data import TensorData
from advlit.models import Classifier
from advlit.study.transfer import TransferEvaluation

META = torch.device("meta")


def mixed_data(device: torch.device, n: int = 64) -> TensorData:
    """A clean set and one adversarial copy on ``device``, batches of 32, augmented."""
    data = TensorData(batch_size=32, eval_batch_size=32, seed=3, augmenter=Augment(), augment=True)
    gen = torch.Generator().manual_seed(0)
    data.train_x = torch.rand(n, 1, 28, 28, generator=gen).to(device)
    data.train_y = torch.randint(0, 10, (n,), generator=gen).to(device)
    data.train_adv = {"fgsm": torch.rand(n, 1, 28, 28, generator=gen).to(device)}
    return data


def test_a_host_sync_on_the_meta_device_raises():
    x = torch.rand(4, device=META)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(x.any())
    with pytest.raises((RuntimeError, NotImplementedError)):
        x[x > 0.5]


def test_a_training_step_reads_nothing_back_from_the_device():
    data = mixed_data(META)
    module = Classifier().to(META)
    module.log = lambda *args, **kwargs: None  # Lightning's logging is outside the step's own math
    optimizer = module.configure_optimizers()
    batches = iter(data.train_dataloader())
    for _ in range(2):  # the batches mix clean and adversarial images
        batch = next(batches)
        assert batch[2].device.type == "cpu", "the clean mask stays on the host"
        x, y = data.on_after_batch_transfer(data.transfer_batch_to_device(batch, META, 0), 0)
        loss = module.training_step((x, y), 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_augmenting_by_position_equals_augmenting_through_a_boolean_mask():
    data = mixed_data(torch.device("cpu"))
    for batch in data.train_dataloader():
        x, y, clean, seed = batch
        if 0 < int(clean.sum()) < len(x):
            break
    else:
        pytest.fail("no batch mixed clean and adversarial images")
    out, _ = data.on_after_batch_transfer(batch, 0)
    expected = x.clone()
    expected[clean] = data.augmenter(x[clean], torch.Generator().manual_seed(seed))
    assert torch.equal(out, expected)
    assert torch.equal(out[~clean], x[~clean]) and not torch.equal(out[clean], x[clean])


class Stand(nn.Module):
    """A LightningModule stand-in on the meta device that records what it logs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(28 * 28, 10)
        self.logged = {}

    @property
    def device(self) -> torch.device:
        return self.net.weight.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def evaluation(y: torch.Tensor, sets: dict[str, torch.Tensor], window_start: int = 5) -> TransferEvaluation:
    ev = TransferEvaluation(attacks=["fgsm"], attackers=[{"name": "A"}], window_start=window_start,
                            whitebox_attacks=["fgsm"], whitebox_images=8, eval_batch_size=16)  # fmt: skip
    ev.test_y, ev.test_sets, ev.end = y, sets, 5  # what setup() sets in a run
    return ev


@pytest.mark.parametrize("in_window", [False, True])
def test_scoring_an_epoch_reads_the_device_once_whatever_the_sets(in_window):
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 10, (40,), generator=gen)
    sets = {name: torch.rand(40, 1, 28, 28, generator=gen) for name in ("clean", "A/fgsm", "A/fgsm_noise")}
    module = Stand()
    reduces = []
    trainer = SimpleNamespace(global_rank=0, world_size=1, sanity_checking=False, current_epoch=0,
                              is_global_zero=False,  # no example grid: there is no logger here
                              strategy=SimpleNamespace(reduce=lambda t, reduce_op: reduces.append(t) or t))  # fmt: skip
    ev = evaluation(y, sets, window_start=1 if in_window else 5)
    ev.on_validation_epoch_end(trainer, module)
    assert len(reduces) == 1, "one all_reduce for every set, worst case, white-box score and histogram"
    with torch.no_grad():
        pred = {name: module(x).argmax(1) for name, x in sets.items()}
    for name in sets:
        assert ev.history[1][name] == pytest.approx((pred[name] == y).double().mean().item())
        assert ev.histograms[name] == torch.bincount(pred[name], minlength=10).tolist()
    assert ev.history[1]["A/worst"] == pytest.approx((pred["A/fgsm"] == y).double().mean().item())
    assert ("whitebox/fgsm" in ev.history[1]) == in_window
    if in_window:
        assert ev.subset_history[1]["A/fgsm"] == pytest.approx((pred["A/fgsm"][:8] == y[:8]).double().mean().item())

    meta = Stand().to(META)
    counts, correct = evaluation(y.to(META), {}).counts(trainer, meta, sets["clean"].to(META))
    assert counts.shape == (12,) and correct.shape == (40,)  # made without a read from the device


def test_lightning_moves_a_training_batch_through_the_datamodule_keeping_its_mask_on_the_host(monkeypatch):
    from lightning.pytorch import Trainer

    data = mixed_data(torch.device("cpu"))
    data.test_x, data.test_y = data.train_x[:8], data.train_y[:8]
    seen = []
    moved = TensorData.transfer_batch_to_device

    def spy(self, batch, device, dataloader_idx):
        out = moved(self, batch, device, dataloader_idx)
        if len(batch) == 4:
            seen.append(out[2].device.type)
        return out

    monkeypatch.setattr(TensorData, "transfer_batch_to_device", spy)
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(Classifier(), data)
    assert seen == ["cpu"] * 4, "every training batch went through the DataModule's hook, its mask on the host"
