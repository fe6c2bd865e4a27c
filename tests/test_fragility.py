"""The noise-fragility investigation: its noise sets keep their budgets, and both commands print a row per network."""

import pytest
import torch

from advlit.bench import fragility
from advlit.models import build_network
from advlit.runtime.errors import ConfigError
from advlit.study.cache import save_tensors


def test_noise_sets_keep_their_budgets():
    x = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.45  # no clipping
    sets = fragility.noise_sets(x)
    assert (sets["sign 0.2"] - x).abs().sub(0.2).abs().max() < 1e-6, "every pixel moves by exactly 0.2"
    changed = (sets["salt 20 px"] != x).flatten(1).sum(1)
    assert changed.eq(20).all() and sets["salt 20 px"].max() == 1.0
    l2 = (sets["gauss L2 2"] - x).flatten(1).norm(dim=1)
    assert torch.allclose(l2, torch.full_like(l2, 2.0), atol=1e-4)


def test_ablation_trains_the_chosen_variants_and_prints_a_row_each(mnist_dir, capsys):
    fragility.ablation(str(mnist_dir), train_images=128, epochs=1, variants=["none", "erasing only"])
    out = capsys.readouterr().out
    assert "| none |" in out and "| erasing only |" in out and "sign 0.2" in out
    assert "| rotation only |" not in out
    with pytest.raises(ConfigError, match="unknown"):
        fragility.ablation(str(mnist_dir), variants=["mixup"])


def test_networks_scores_cached_surrogates(mnist_dir, tmp_path, capsys):
    path = tmp_path / "net.pt"
    save_tensors(build_network("lenet5").state_dict(), {}, path)
    fragility.networks(str(mnist_dir), [f"A={path}"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| A |"))
    assert len(row.split("|")) == 2 + 1 + len(fragility.noise_sets(torch.zeros(1, 1, 28, 28)))


def test_a_missing_data_folder_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["fragility", "networks", "--data_dir", str(tmp_path), "--networks", "[A=x]"])
    with pytest.raises(SystemExit) as exit:
        fragility.main()
    assert exit.value.code == 2 and capsys.readouterr().err.startswith("advlit.bench.fragility: error:")
