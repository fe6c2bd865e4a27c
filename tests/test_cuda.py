"""Checks that need a CUDA GPU (``pytest -m cuda``; skipped elsewhere): the same draws and results
on the GPU as on the CPU, and a smoke run end to end on the GPU (benchmarks/gpu_check.sh runs them)."""

import json

import pytest
import torch
from conftest import run_cli, smoke_args

from advlit.attacks import build_attack
from advlit.data import Augment

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_augmentation_draws_the_same_parameters_on_the_gpu():
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    aug = Augment()
    cpu = aug(x, torch.Generator().manual_seed(7))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(7)).cpu()
    assert (cpu != gpu).float().mean() < 0.01, "same angles, shifts and boxes; sampling may differ at a few pixels"


@pytest.mark.parametrize("name", ["fgsm", "jsma"])
def test_an_attack_on_the_gpu_matches_the_cpu(name):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    attack = build_attack(name)
    cpu = attack(net.eval(), x, y)
    gpu = attack(net.cuda().eval(), x.cuda(), y.cuda()).cpu()
    assert (cpu != gpu).flatten(1).any(1).float().mean() <= 0.1, "at most a few images take another path"


def test_a_smoke_run_on_the_gpu_records_its_device_and_fp32(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = smoke_args(mnist_dir, tmp_path / "cache", "fgsm_jsma.yaml")
    assert run_cli(*args, "--trainer.accelerator", "gpu", "--trainer.devices", "1") == 0
    (metrics,) = (tmp_path / "tb_logs").rglob("metrics.json")
    record = json.loads(metrics.read_text())
    assert record["float_settings"] == {"device": "cuda", "dtype": "float32", "tf32": False, "adam": "fused"}
    assert record["provenance"]["machine"]["gpu"]


def test_a_training_step_on_the_gpu_never_syncs():
    """The sync debug mode of torch turns every host sync into an error, over steps on mixed batches."""
    from test_syncs import mixed_data

    from advlit.models import Classifier

    device = torch.device("cuda")
    data = mixed_data(device)
    module = Classifier().to(device)
    module.log = lambda *args, **kwargs: None  # Lightning's logging is outside the step's own math
    optimizer = module.configure_optimizers()
    assert module.adam_kind == "fused"
    batches = [data.transfer_batch_to_device(b, device, 0) for b in data.train_dataloader()]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches:
            x, y = data.on_after_batch_transfer(batch, 0)
            module.training_step((x, y), 0).backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name", ["jsma", "cw"])
def test_attack_iterations_on_the_gpu_read_back_only_at_their_checks(name):
    """JSMA reads whether all images finished every 8 steps, C&W every max_iterations // 10."""
    import warnings

    from advlit.attacks import JSMA, CarliniWagnerL2

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    net = net.cuda().eval()
    x, y = torch.rand(64, 1, 28, 28, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    if name == "jsma":
        attack, limit = JSMA(gamma=0.1), int(0.1 * 784) // 8 + 1
        run = lambda: attack.targeted_fixed(net, x, (y + 1) % 10)  # noqa: E731
    else:
        attack, limit = CarliniWagnerL2(c_init=2.0, binary_search_steps=1, max_iterations=50, lr=0.1), 10 + 1
        best = torch.full((64,), float("inf"), device="cuda"), x.clone()
        run = lambda: attack.search_step_fixed(net, x, y, torch.full((64,), 2.0, device="cuda"), *best)  # noqa: E731
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= limit, [str(w.message) for w in syncs[:3]]
