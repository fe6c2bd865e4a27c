import pytest
import torch

from advlit.data import Augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_keeps_shape_and_range():
    x = torch.rand(64, 1, 28, 28)
    out = Augment()(x, gen())
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert 0 <= out.min() and out.max() <= 1


def test_every_image_gets_its_own_parameters():
    x = torch.rand(1, 1, 28, 28).expand(16, 1, 28, 28).contiguous()
    out = Augment()(x, gen())
    flat = out.flatten(1)
    distinct = {tuple(row.round(decimals=4).tolist()) for row in flat}
    assert len(distinct) == 16


def test_same_seed_same_result_other_seed_other_result():
    x = torch.rand(8, 1, 28, 28)
    aug = Augment()
    assert torch.equal(aug(x, gen(3)), aug(x, gen(3)))
    assert not torch.equal(aug(x, gen(3)), aug(x, gen(4)))


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(28, dtype=x.dtype)
    mass = x.sum((-1, -2))
    return torch.stack([(x.sum(-1) * coords).sum(-1) / mass, (x.sum(-2) * coords).sum(-1) / mass], -1)


def test_translation_stays_within_six_pixels_and_uses_the_range():
    x = torch.zeros(512, 1, 28, 28)
    x[..., 13:15, 13:15] = 1.0  # a blob at the centre, which rotation does not move
    out = Augment(degrees=0, translate=0.2, erase_p=0)(x, gen())
    shift = (centre_of_mass(out[:, 0]) - centre_of_mass(x[:, 0])).abs()
    assert torch.equal(shift, shift.round())  # whole pixels, as torchvision's RandomAffine
    assert shift.max() == 6.0  # round(U(-5.6, 5.6)) reaches 6


def test_rotation_stays_within_twenty_degrees():
    x = torch.zeros(256, 1, 28, 28)
    x[..., 13:15, 22:24] = 1.0  # a blob right of the centre
    out = Augment(degrees=20, translate=0, erase_p=0)(x, gen())
    d = centre_of_mass(out[:, 0]) - 13.5  # (row, col) from the centre
    angle = torch.rad2deg(torch.atan2(d[:, 0], d[:, 1])).abs()
    assert angle.max() <= 20.5
    assert angle.max() > 15


def test_erasing_removes_at_most_thirty_percent():
    x = torch.ones(512, 1, 28, 28)
    out = Augment(degrees=0, translate=0, erase_p=1.0, erase_max_area=0.3)(x, gen())
    erased = (out == 0).flatten(1).sum(1)
    assert erased.max() <= 0.3 * 784 + 28  # torchvision rounds the box's sides, so slightly over 30% can happen
    assert erased.min() >= 1
    assert erased.float().mean() > 0.1 * 784


def test_erase_probability_zero_erases_nothing():
    x = torch.ones(64, 1, 28, 28)
    out = Augment(degrees=0, translate=0, erase_p=0.0)(x, gen())
    assert torch.equal(out, x)  # identity warp, no rectangle set to 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"degrees": -1}, "rotate_degrees=-1"),
        ({"translate": -0.1}, "translate=-0.1"),
        ({"interpolation": "cubic"}, "interpolation='cubic'"),
        ({"erase_p": 1.5}, "erase_p=1.5"),
        ({"erase_max_area": 1.2}, "erase_max_area=1.2"),
    ],
)
def test_out_of_range_settings_are_rejected_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Augment(**kwargs)


def test_warp_and_erase_match_torchvision_per_image():
    """The batched warp equals torchvision's affine (NEAREST, fill 0) on the same angle and shift,
    and the erasing equals its erase on the same box, image by image."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    g = gen(5)
    x = torch.rand(300, 1, 28, 28, generator=g)
    x = x * (x > 0.6)  # MNIST-like: mostly zeros with strokes
    aug = Augment()
    angle, shift = aug.affine_params(len(x), x.shape[-2:], g, x.device)
    warped = aug.warp(x, angle, shift)
    boxes = aug.erase_params(len(x), x.shape[-2:], g, x.device)
    erased = aug.erase(warped, boxes)
    differing = 0
    for i in range(len(x)):
        ref = TF.affine(x[i], angle=float(angle[i]), translate=[int(shift[i, 0]), int(shift[i, 1])], scale=1.0,
                        shear=[0.0, 0.0], interpolation=InterpolationMode.NEAREST, fill=0.0)  # fmt: skip
        differing += int((ref != warped[i]).sum())  # only a sampling point on a rounding tie may differ
        top, left, h, w = boxes[i].tolist()
        ref_erased = TF.erase(warped[i], top, left, h, w, torch.zeros(1, 1, 1)) if h else warped[i]
        assert torch.equal(ref_erased, erased[i])
    assert differing == 0  # a sampling point on a rounding tie could differ; none does here
    assert angle.abs().max() <= 20 and angle.abs().max() > 18
    assert 0.4 < (boxes[:, 2] > 0).float().mean() < 0.6  # p = 0.5


def test_bilinear_blurs_a_sub_degree_rotation_nearest_does_not():
    x = (torch.rand(8, 1, 28, 28, generator=gen(1)) > 0.5).float()
    angle, shift = torch.full((8,), 0.5, dtype=torch.float64), torch.zeros(8, 2, dtype=torch.float64)
    nearest = Augment(interpolation="nearest").warp(x, angle, shift)
    bilinear = Augment(interpolation="bilinear").warp(x, angle, shift)
    assert set(nearest.unique().tolist()) <= {0.0, 1.0}  # values are copied, never mixed
    assert ((bilinear > 0) & (bilinear < 1)).any()
