"""White-box accuracy, the worst case per image and the gradient-masking flag, on hand-made cases."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advlit.attacks import FGSM
from advlit.study import robustness

ONE_PROCESS = SimpleNamespace(global_rank=0, world_size=1, strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))


def scores(trainer, *tallies: dict) -> list[dict[str, float]]:
    summed = robustness.sum_over_ranks(trainer, dict(enumerate(tallies)))
    return [robustness.accuracies(summed[i]) for i in range(len(tallies))]


def whitebox(*args, **kwargs) -> dict[str, float]:
    return robustness.accuracies(
        robustness.sum_over_ranks(ONE_PROCESS, {0: robustness.whitebox_tallies(*args, **kwargs)})[0]
    )


def test_worst_case_counts_an_image_only_when_right_under_every_attack():
    correct = {
        "A/fgsm": torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool),
        "A/jsma": torch.tensor([1, 0, 1, 1, 1, 0], dtype=torch.bool),
        "A/fgsm_noise": torch.zeros(6, dtype=torch.bool),  # controls are not attacks: ignored
    }
    attacks = {"fgsm": FGSM(), "jsma": FGSM()}
    worst, subset = scores(ONE_PROCESS, *robustness.worst_and_subset_tallies(ONE_PROCESS, correct, ["A"], attacks,
                                                                              {"fgsm": FGSM()}, 4))  # fmt: skip
    assert worst == {"A/worst": pytest.approx(3 / 6)}  # images 0, 3, 4
    assert subset == {"A/fgsm": pytest.approx(3 / 4)}  # FGSM on the first 4 (white-box) images only


@pytest.mark.parametrize(("rank", "mine"), [(0, [0, 2, 4]), (1, [1, 3])])
def test_each_rank_scores_its_own_share_of_the_whitebox_images(rank, mine):
    full = torch.tensor([1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)  # 9 images; white-box on the first 5
    trainer = SimpleNamespace(global_rank=rank, world_size=2, strategy=ONE_PROCESS.strategy)  # reduce: identity
    fgsm = {"fgsm": FGSM()}
    _, subset = scores(trainer, *robustness.worst_and_subset_tallies(trainer, {"A/fgsm": full[rank::2]}, ["A"],
                                                                     fgsm, fgsm, 5))  # fmt: skip
    assert subset["A/fgsm"] == pytest.approx(full[mine].float().mean().item())


class Module(nn.Module):
    """A LightningModule stand-in: a network with a ``device``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RoundedInput(nn.Module):
    """Gradient masking by construction: the input is rounded to 8 bits, whose gradient is zero."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 255) / 255)


def trained_linear(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear classifier on two blobs of 28x28 images 0.1 apart per pixel, and 200 test images."""
    gen = torch.Generator().manual_seed(seed)
    base = 0.25 + 0.5 * torch.rand(1, 28, 28, generator=gen)
    delta = 0.1 * torch.randn(1, 28, 28, generator=gen).sign()
    y = torch.randint(0, 2, (600,), generator=gen)
    x = (base + y[:, None, None, None] * delta + 0.03 * torch.randn(600, 1, 28, 28, generator=gen)).clamp(0, 1)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        loss = F.cross_entropy(net(x[:400]), y[:400])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), x[400:], y[400:]


def test_masked_gradients_raise_the_flag():
    net, x, y = trained_linear(0)
    masked = Module(RoundedInput(net))
    attack = FGSM(eps=0.2)
    white = whitebox(ONE_PROCESS, masked, {"fgsm": attack}, x, y, batch_size=64)
    with torch.no_grad():
        clean = (masked(x).argmax(1) == y).float().mean().item()
        black = (masked(attack(net, x, y)).argmax(1) == y).float().mean().item()  # made on the unmasked twin
    assert white == {"whitebox/fgsm": pytest.approx(clean)}, "no gradient, so the white-box attack does nothing"
    assert black < clean - 0.2, "the same attack made on the twin transfers"
    flags = robustness.gradient_masking({"A/fgsm": black}, white, images=len(x))
    assert flags["A/fgsm"]["flag"] is True


def test_honest_gradients_raise_no_flag():
    net, x, y = trained_linear(0)
    attacker, _, _ = trained_linear(1)  # another network, other blobs: its examples transfer poorly
    attack = FGSM(eps=0.2)
    white = whitebox(ONE_PROCESS, Module(net), {"fgsm": attack}, x, y, batch_size=64)
    with torch.no_grad():
        black = (net(attack(attacker, x, y)).argmax(1) == y).float().mean().item()
    flags = robustness.gradient_masking({"A/fgsm": black}, white, images=len(x))
    assert flags["A/fgsm"]["flag"] is False and white["whitebox/fgsm"] < black


def test_8bit_sets_hold_multiples_of_one_255th_and_move_each_pixel_at_most_half_a_level():
    from advlit.study.transfer import to_8bit

    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    q = to_8bit(x)
    assert torch.equal(q * 255, torch.round(q * 255)) and q.min() >= 0 and q.max() <= 1
    assert (q - x).abs().max() <= 0.5 / 255 + 1e-7
    assert torch.equal(to_8bit(q), q), "an 8-bit image stays as it is"


@pytest.mark.parametrize(("black", "flag"), [(0.47, True), (0.49, False), (0.5, False), (0.9, False)])
def test_masking_flag_needs_the_black_box_attack_to_hurt_more_by_the_margin(black, flag):
    out = robustness.gradient_masking({"A/fgsm": black, "Ap/pgd": 0.1}, {"whitebox/fgsm": 0.5}, 1000, margin=0.02)
    assert out == {"A/fgsm": {"black_box_median": black, "white_box_median": 0.5, "flag": flag}}, "no PGD twin"
