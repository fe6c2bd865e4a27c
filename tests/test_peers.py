"""torchattacks attacks as advlit attacks (skipped where torchattacks is not installed: the peers extra)."""

import pytest
import torch

from advlit.attacks import FGSM, build_attack
from advlit.runtime.errors import ConfigError
from advlit.study.adversarial_sets import set_path
from advlit.study.controls import matched_noise

pytest.importorskip("torchattacks")


def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def batch():
    g = torch.Generator().manual_seed(3)
    return torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_torchattacks_fgsm_is_advlits_fgsm():
    net, (x, y) = small_net(), batch()
    theirs = build_attack("torchattacks", attack="FGSM", params={"eps": 0.2})(net, x, y)
    assert torch.equal(theirs, FGSM(0.2)(net, x, y))


def test_torchattacks_pgd_is_seeded_bounded_and_leaves_the_model_alone():
    net, (x, y) = small_net(), batch()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    attack = build_attack("torchattacks", attack="PGD", params={"eps": 0.2, "alpha": 0.05, "steps": 5}, seed=1)
    a, b = attack(net, x, y), attack(net, x, y)
    assert torch.equal(a, b), "seeded: the same draws every call"
    assert not torch.equal(a, build_attack("torchattacks", attack="PGD", params={"eps": 0.2}, seed=2)(net, x, y))
    assert (a - x).abs().max() <= 0.2 + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())
    assert matched_noise(attack, x, a).shape == x.shape, "its norm gives it a matched-noise control"


def test_a_bad_torchattacks_setting_is_one_line_before_any_work():
    with pytest.raises(ConfigError, match="torchattacks has no attack 'NoSuch'"):
        build_attack("torchattacks", attack="NoSuch")
    with pytest.raises(ConfigError, match="torchattacks.PGD with"):
        build_attack("torchattacks", attack="PGD", params={"epsilon": 0.2})
    with pytest.raises(ConfigError, match="norm"):
        build_attack("torchattacks", attack="PGD", norm="l3")


def test_a_torchattacks_sets_key_holds_its_batch_size():
    attack = build_attack("torchattacks", attack="PGD", params={"eps": 0.2})
    assert not attack.batch_consistent, "its draws are per batch"
    keys = {set_path("net", "pgd", attack, "test", "d", None, b)[0] for b in (100, 1000)}
    assert len(keys) == 2
