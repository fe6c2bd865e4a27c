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


def test_l0_control_sets_as_many_random_pixels_to_one(images):
    x_adv = images.clone().flatten(1)
    counts = torch.arange(len(images)) % 7  # 0..6 pixels per image, image 0 unchanged
    for i, k in enumerate(counts.tolist()):
        x_adv[i, 100 : 100 + k] = 1.0
    x_adv = x_adv.view_as(images)
    noise = matched_noise(JSMA(), images, x_adv)
    changed = (noise != images).flatten(1)
    assert torch.equal(changed.sum(1), counts)
    assert (noise.flatten(1)[changed] == 1).all()
    assert not torch.equal(changed, (x_adv != images).flatten(1)), "the pixels are random, not the attack's"


def test_l2_control_matches_each_images_l2_after_clipping(images):
    x_adv = (images + 0.08 * torch.randn_like(images)).clamp(0, 1)
    x_adv[0] = images[0]
    noise = matched_noise(CarliniWagnerL2(), images, x_adv)
    target = (x_adv - images).flatten(1).norm(dim=1)
    got = (noise - images).flatten(1).norm(dim=1)
    assert torch.allclose(got, target, rtol=1e-3, atol=1e-6)
    assert 0 <= noise.min() and noise.max() <= 1
    assert torch.equal(noise[0], images[0]), "an image the attack left alone stays alone"


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
