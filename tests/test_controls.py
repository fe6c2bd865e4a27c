"""Matched-noise controls: same per-image budget as the attack, random direction, repeatable."""

import pytest
import torch

from advlit.attacks import FGSM, JSMA, CarliniWagnerL2
from advlit.study.controls import matched_noise, norm_of


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 28, 28, generator=g)
    return x * (x > 0.7)  # MNIST-like: mostly exact zeros


def test_linf_control_spends_the_attack_budget_per_pixel(images):
    x_adv = (images + 0.2 * torch.randn_like(images).sign()).clamp(0, 1)
    noise = matched_noise(FGSM(eps=0.2), images, x_adv)
    diff = noise - images
    assert diff.abs().amax((1, 2, 3)).sub(0.2).abs().max() < 1e-6
    moved = (images >= 0.2) & (images <= 0.8)  # where clipping leaves room, every pixel moves by eps
    assert torch.allclose(diff[moved].abs(), torch.full_like(diff[moved], 0.2), atol=1e-6)
    assert (diff > 0).sum() > 0.2 * diff.numel() and (diff < 0).sum() > 0.05 * diff.numel()


def jsma_like(images: torch.Tensor) -> torch.Tensor:
    """A JSMA-shaped change: 0..6 pixels per image raised to 1, partly lit ones among them."""
    x_adv = images.clone().flatten(1)
    for i in range(len(images)):
        k = i % 7  # image 0 unchanged
        lit = images[i].flatten().nonzero().flatten()[: k // 2]  # some partly lit pixels, smaller changes
        x_adv[i, lit] = 1.0
        x_adv[i, 100 : 100 + k - len(lit)] = 1.0
    return x_adv.view_as(images)


def sorted_changes(x: torch.Tensor, x_changed: torch.Tensor) -> list[torch.Tensor]:
    diff = (x_changed - x).flatten(1)
    return [row[row != 0].sort().values for row in diff]


def test_l0_control_moves_the_attacks_own_changes_to_random_pixels(images):
    x_adv = jsma_like(images)
    noise = matched_noise(JSMA(), images, x_adv)
    assert 0 <= noise.min() and noise.max() <= 1
    for i, (ours, theirs) in enumerate(zip(sorted_changes(images, noise), sorted_changes(images, x_adv), strict=True)):
        assert len(ours) == len(theirs), f"image {i}: L0 {len(ours)} vs the attack's {len(theirs)}"
        assert torch.allclose(ours, theirs, atol=1e-6), f"image {i}: not the attack's per-pixel changes"
    l1 = lambda a: (a - images).flatten(1).abs().sum(1)  # noqa: E731
    l2 = lambda a: (a - images).flatten(1).norm(dim=1)  # noqa: E731
    assert torch.allclose(l1(noise), l1(x_adv), atol=1e-5) and torch.allclose(l2(noise), l2(x_adv), atol=1e-5)
    assert torch.equal(noise[0], images[0]), "an image the attack left alone stays alone"
    assert not torch.equal(noise != images, x_adv != images), "the pixels are random, not the attack's"


def test_l0_control_finds_room_for_large_changes_when_few_pixels_have_it():
    x = torch.full((1, 1, 4, 4), 0.5)
    x[0, 0, 0, :2] = 0.0  # only two pixels can take a change of +1
    x_adv = x.clone()
    x_adv[0, 0, 3, 0], x_adv[0, 0, 3, 1], x_adv[0, 0, 0, 0] = 1.0, 1.0, 1.0  # +0.5, +0.5, +1.0
    noise = matched_noise(JSMA(), x, x_adv)
    assert torch.allclose(sorted_changes(x, noise)[0], torch.tensor([0.5, 0.5, 1.0]))


def test_l2_control_matches_each_images_l0_and_l2_after_clipping(images):
    x_adv = (images + 0.3 * torch.randn_like(images) * (torch.rand_like(images) < 0.5)).clamp(0, 1)
    x_adv[0] = images[0]
    noise = matched_noise(CarliniWagnerL2(), images, x_adv)
    target = (x_adv - images).flatten(1).norm(dim=1)
    got = (noise - images).flatten(1).norm(dim=1)
    assert torch.allclose(got, target, rtol=1e-3, atol=1e-6)
    assert torch.equal((noise != images).flatten(1).sum(1), (x_adv != images).flatten(1).sum(1))
    assert 0 <= noise.min() and noise.max() <= 1
    assert torch.equal(noise[0], images[0]), "an image the attack left alone stays alone"
    assert not torch.equal(noise != images, x_adv != images), "the pixels are random, not the attack's"


def test_controls_repeat_and_a_batch_equals_its_images_alone(images):
    x_adv = (images + 0.1 * torch.randn_like(images)).clamp(0, 1)
    attack = CarliniWagnerL2()
    batch = matched_noise(attack, images, x_adv)
    assert torch.equal(batch, matched_noise(attack, images, x_adv))
    alone = torch.cat([matched_noise(attack, images[i : i + 1], x_adv[i : i + 1]) for i in range(4)])
    assert torch.allclose(alone, batch[:4], atol=1e-6)
    assert not torch.equal(matched_noise(attack, images, x_adv, seed=1), batch)


def test_an_attack_without_a_norm_is_refused():
    class Odd(FGSM.__mro__[1]):  # the Attack base class
        def perturb(self, model, x, y):
            return x

    with pytest.raises(ValueError, match="declares no norm"):
        norm_of(Odd())


def test_iterative_linf_attacks_get_their_own_changes_moved_in_every_norm(images):
    from advlit.attacks import build_attack
    from advlit.attacks.diverse import DiverseFGSM
    from advlit.study.controls import CONTROLS_VERSION, controls_key

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    y = torch.arange(len(images)) % 10
    di = DiverseFGSM(eps=0.2, steps=5, diversity_prob=0.5)
    x_adv = di(net, images, y)
    noise = matched_noise(di, images, x_adv)
    diff, control = (x_adv - images).flatten(1), (noise - images).flatten(1)
    assert (diff.abs() < 0.2 - 1e-6).logical_and(diff != 0).any(), "DI leaves changed pixels under eps"
    for norm in (0, 1, 2, float("inf")):  # image by image: the control spends what the attack spent
        assert torch.allclose(control.norm(p=norm, dim=1), diff.norm(p=norm, dim=1), atol=1e-4), f"L{norm}"
    assert not torch.equal(noise != images, x_adv != images), "the pixels are random, not the attack's"
    assert [norm_of(build_attack(n)) for n in ("mifgsm", "di_fgsm", "ti_fgsm")] == ["changes"] * 3
    assert [controls_key(build_attack(n)) for n in ("fgsm", "jsma", "cw")] == [CONTROLS_VERSION] * 3, (
        "the paper attacks' test sets keep their cache keys"
    )
    assert controls_key(build_attack("di_fgsm")) != CONTROLS_VERSION, "no set with the earlier sign noise is reused"
