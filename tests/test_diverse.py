"""DI-, TI- and MI-FGSM: references written out, per-image seeding, the model left alone."""

import pytest
import torch
import torch.nn.functional as F

from advlit.attacks import MIFGSM, PGD, build_attack
from advlit.attacks.diverse import DiverseFGSM, diverse_inputs, gaussian_kernel


def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 28 * 28, 10)
    ).eval()


def batch(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_without_diversity_or_smoothing_the_momentum_form_is_mi_fgsm():
    net, (x, y) = small_net(), batch()
    ours = DiverseFGSM(eps=0.2, steps=5, decay=1.0, diversity_prob=0.0, kernel_size=1)(net, x, y)
    assert torch.equal(ours, MIFGSM(eps=0.2, steps=5, decay=1.0)(net, x, y))


def test_without_anything_it_is_iterative_fgsm_written_out():
    net, (x, y) = small_net(), batch()
    ours = DiverseFGSM(eps=0.2, steps=4, decay=0.0, diversity_prob=0.0, kernel_size=1)(net, x, y)
    x_adv = x.clone()
    for _ in range(4):  # I-FGSM: steps of eps/steps along the gradient's sign, projected
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(net(x_adv), y, reduction="sum"), x_adv)
        x_adv = (x + (x_adv.detach() + 0.05 * grad.sign() - x).clamp(-0.2, 0.2)).clamp(0, 1)
    assert torch.allclose(ours, x_adv, atol=1e-6)
    assert not torch.equal(ours, PGD(eps=0.2)(net, x, y)), "PGD's random start and step differ"


def test_ti_smooths_the_gradient_with_a_gaussian_written_out():
    k = gaussian_kernel(5, 1.0, torch.device("cpu"), torch.float32)[0, 0]
    assert torch.isclose(k.sum(), torch.tensor(1.0)) and k[2, 2] == k.max() and torch.equal(k, k.T)
    grad = torch.zeros(1, 1, 28, 28)
    grad[0, 0, 10, 12] = 1.0
    smoothed = F.conv2d(grad, k.view(1, 1, 5, 5), padding=2)
    for di in range(-2, 3):  # a point spreads into the kernel itself, centred on it
        for dj in range(-2, 3):
            assert torch.isclose(smoothed[0, 0, 10 + di, 12 + dj], k[2 + di, 2 + dj])
    net, (x, y) = small_net(), batch()
    ti = DiverseFGSM(eps=0.2, steps=3, diversity_prob=0.0, kernel_size=5)(net, x, y)
    plain = DiverseFGSM(eps=0.2, steps=3, diversity_prob=0.0, kernel_size=1)(net, x, y)
    assert not torch.equal(ti, plain) and (ti - x).abs().max() <= 0.2 + 1e-6


def dong_gkern(kernlen: int, nsig: float = 3.0) -> torch.Tensor:
    """Dong et al.'s TI kernel (their ``gkern``: the normal density at ``linspace(-nsig, nsig, kernlen)``)."""
    x = torch.linspace(-nsig, nsig, kernlen, dtype=torch.float64)
    g = torch.exp(-(x**2) / 2)
    return (g[:, None] * g[None, :] / (g[:, None] * g[None, :]).sum()).float()


@pytest.mark.parametrize("size", [5, 15])
def test_ti_default_kernel_is_dongs(size):
    ours = gaussian_kernel(size, (size - 1) / 6, torch.device("cpu"), torch.float32)[0, 0]
    assert torch.allclose(ours, dong_gkern(size), atol=1e-7)
    net, (x, y) = small_net(), batch()
    default = DiverseFGSM(eps=0.2, steps=3, diversity_prob=0.0, kernel_size=size)(net, x, y)
    assert torch.equal(default, DiverseFGSM(eps=0.2, steps=3, diversity_prob=0.0, kernel_size=size,
                                            sigma=(size - 1) / 6)(net, x, y))  # fmt: skip


def test_input_diversity_moves_a_pixel_where_resize_and_pad_put_it():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 5, 20] = 1.0
    u = torch.tensor([[0.0, 0.99, 0.99, 0.0]])  # apply; side 29 of the 30-pixel canvas; top 1, left 0
    out = diverse_inputs(x, u, resize_rate=1.1, prob=0.5)
    # canvas pixel = offset + (i + 0.5) * 29/28, then back to 28 pixels: * 28/30
    row, col = (1 + 5.5 * 29 / 28) * 28 / 30 - 0.5, (0 + 20.5 * 29 / 28) * 28 / 30 - 0.5
    weights = out[0, 0] / out[0, 0].sum()
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    assert abs((weights * rows).sum() - row) < 0.15 and abs((weights * cols).sum() - col) < 0.15
    assert torch.equal(diverse_inputs(x, torch.tensor([[0.9, 0.5, 0.5, 0.5]]), 1.1, 0.5), x), "not applied"


def test_di_draws_per_image_so_a_batch_equals_its_images_alone_and_the_model_is_left_alone():
    net, (x, y) = small_net(), batch(6)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    attack = build_attack("di_fgsm", decay=1.0)
    together = attack(net, x, y)
    alone = torch.cat([attack(net, x[i : i + 1], y[i : i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert not torch.equal(together, build_attack("di_fgsm", decay=1.0, seed=1)(net, x, y)), "seeded"
    assert together.min() >= 0 and together.max() <= 1 and (together - x).abs().max() <= 0.2 + 1e-6


def test_ti_fgsm_is_registered_with_smoothing_and_no_diversity():
    ti = build_attack("ti_fgsm")
    assert ti.kernel_size == 5 and ti.diversity_prob == 0.0
