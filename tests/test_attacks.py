"""Attacks on a small batch-normed network trained here on the fixture digits (seconds on a CPU)."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advlit.attacks import ATTACKS, FGSM, JSMA, MIFGSM, PGD, CarliniWagnerL2, build_attack, run_attack, saliency
from advlit.attacks.saliency import best_pairs
from advlit.data import load_mnist

LIGHT_CW = dict(c_init=1.0, binary_search_steps=3, max_iterations=60, lr=0.1)
FAST = {  # every attack, with settings light enough for a test
    "fgsm": FGSM(eps=0.2),
    "pgd": PGD(eps=0.2, alpha=0.05, steps=5),
    "mifgsm": MIFGSM(eps=0.2, steps=5),
    "jsma": JSMA(gamma=0.1),
    "jsma_single": JSMA(gamma=0.1, variant="single"),
    "jsma_best": JSMA(gamma=0.1, target="best"),
    "cw": CarliniWagnerL2(**LIGHT_CW),
}


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def victim(mnist_dir):
    """(model, x, y): a network at high fixture accuracy, and 40 test images it classifies right."""
    torch.manual_seed(0)
    x_train, y_train = load_mnist(mnist_dir, train=True)
    net = small_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        for i in range(0, len(x_train), 50):
            loss = F.cross_entropy(net(x_train[i : i + 50]), y_train[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    x, y = load_mnist(mnist_dir, train=False)
    with torch.no_grad():
        right = net(x).argmax(1) == y
    assert right.float().mean() > 0.9, "the fixture network must learn the fixture digits"
    return net, x[right][:40], y[right][:40]


def accuracy(net, x, y) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def test_fgsm_stays_in_its_ball_and_lowers_accuracy(victim):
    net, x, y = victim
    x_adv = FGSM(eps=0.2)(net, x, y)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6
    assert accuracy(net, x_adv, y) < accuracy(net, x, y) - 0.3


def test_pgd_stays_in_its_ball_and_beats_fgsm(victim):
    net, x, y = victim
    x_adv = PGD(eps=0.1, alpha=0.02, steps=10)(net, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    fgsm = accuracy(net, FGSM(eps=0.1)(net, x, y), y)
    assert fgsm >= 0.2, "FGSM must leave room for PGD to do better"
    assert accuracy(net, x_adv, y) < fgsm


def iterative_fgsm(net, x, y, eps: float, steps: int) -> torch.Tensor:
    """I-FGSM written out here, image by image: MI-FGSM with no momentum must equal it."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        xa = xi[None].clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(net(xa), yi[None]), xa)
            xa = (xi + (xa.detach() + eps / steps * g.sign() - xi).clamp(-eps, eps)).clamp(0, 1)
        out.append(xa)
    return torch.cat(out)


def test_mifgsm_without_momentum_is_iterative_fgsm_and_momentum_changes_it(victim):
    net, x, y = victim
    x, y = x[:10], y[:10]
    no_momentum = MIFGSM(eps=0.15, steps=6, decay=0.0)(net, x, y)
    torch.testing.assert_close(no_momentum, iterative_fgsm(net, x, y, 0.15, 6), rtol=0, atol=1e-6)
    assert not torch.equal(MIFGSM(eps=0.15, steps=6, decay=1.0)(net, x, y), no_momentum)


def test_mifgsm_stays_in_its_ball_and_beats_fgsm(victim):
    net, x, y = victim
    x_adv = MIFGSM(eps=0.1, steps=10)(net, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    fgsm = accuracy(net, FGSM(eps=0.1)(net, x, y), y)
    assert fgsm >= 0.2, "FGSM must leave room for MI-FGSM to do better"
    assert accuracy(net, x_adv, y) < fgsm


@pytest.mark.parametrize("variant", ["pairs", "single"])
def test_jsma_changes_few_pixels_and_reaches_its_target(victim, variant):
    net, x, y = victim
    attack = JSMA(gamma=0.2, variant=variant)
    x_adv = attack(net, x, y)
    changed = (x_adv != x).flatten(1).sum(1)
    assert changed.max() <= int(0.2 * 784)
    assert ((x_adv == x) | (x_adv == 1)).all(), "theta 1 sets a pixel to 1 and touches no other"
    from advlit.attacks.rng import image_keys, other_class

    target = other_class(image_keys(x, attack.seed), y, 10)
    with torch.no_grad():
        reached = net(x_adv).argmax(1) == target
    assert reached.float().mean() >= 0.5  # the fixture's blob "digits" are far apart; real digits below


@pytest.fixture(scope="module")
def real_victim(real_mnist):
    """(LeNet5 trained one epoch on 20k real MNIST images, 100 test images it classifies right)."""
    from advlit.bench.attacks import quick_train

    x_train, y_train = load_mnist(real_mnist, train=True)
    net = quick_train("lenet5", x_train[:20000], y_train[:20000], epochs=1)
    x, y = load_mnist(real_mnist, train=False)
    with torch.no_grad():
        right = net(x[:200]).argmax(1) == y[:200]
    return net, x[:200][right][:100], y[:200][right][:100]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["jsma", "jsma_pairs"])
def test_jsma_reaches_its_target_on_a_trained_lenet5(real_victim, name):
    from advlit.attacks.rng import image_keys, other_class

    net, x, y = real_victim
    attack = build_attack(name)  # the paper's theta 1, gamma 0.2
    x_adv = attack(net, x, y)
    with torch.no_grad():
        reached = net(x_adv).argmax(1) == other_class(image_keys(x, attack.seed), y, 10)
    assert reached.float().mean() >= 0.9


def test_jsma_best_target_needs_no_more_pixels_than_random(victim):
    net, x, y = victim
    l0_random = (JSMA(gamma=0.1)(net, x, y) != x).flatten(1).sum(1)
    x_best = JSMA(gamma=0.1, target="best")(net, x, y)
    l0_best = (x_best != x).flatten(1).sum(1)
    with torch.no_grad():
        fooled = net(x_best).argmax(1) != y
    assert fooled.float().mean() > 0.8
    assert l0_best[fooled].float().mean() <= l0_random[fooled].float().mean()


def test_carlini_wagner_fools_with_margin_and_smaller_l2_than_fgsm(victim):
    net, x, y = victim
    x_adv = CarliniWagnerL2(confidence=2.0, **LIGHT_CW)(net, x, y)
    with torch.no_grad():
        logits = net(x_adv)
    real = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    fooled = other - real >= 2.0 - 1e-4
    assert fooled.float().mean() > 0.9
    kept = (x_adv[~fooled] == x[~fooled]).all()
    assert kept, "an image without a successful example keeps its original"
    x_fgsm = FGSM(eps=0.2)(net, x, y)
    l2 = lambda a: (a - x).flatten(1).norm(dim=1)[fooled].mean()  # noqa: E731
    assert l2(x_adv) < l2(x_fgsm)


class Fortified(nn.Module):
    """Wraps a model; images near ``x0`` (L2 < 15) get a logit bonus of 100 on class ``y0``."""

    def __init__(self, net: nn.Module, x0: torch.Tensor, y0: int) -> None:
        super().__init__()
        self.net, self.x0, self.y0 = net, x0, y0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = (x - self.x0).flatten(1).norm(dim=1) < 15
        bonus = torch.zeros(len(x), 10, device=x.device)
        bonus[:, self.y0] = 100.0 * near
        return self.net(x) + bonus


def test_carlini_wagner_image_that_never_succeeds_keeps_its_original(victim):
    net, x, y = victim
    x, y = x[:8], y[:8]
    model = Fortified(net, x[3], int(y[3]))  # image 3 cannot be fooled within reach; the rest can
    x_adv = CarliniWagnerL2(**LIGHT_CW)(model, x, y)
    assert torch.equal(x_adv[3], x[3])
    others = torch.arange(8) != 3
    with torch.no_grad():
        assert (model(x_adv[others]).argmax(1) != y[others]).all()
    assert (x_adv[others] != x[others]).flatten(1).any(1).all()


def test_carlini_wagner_tanh_scale_reaches_a_smaller_l2_in_few_iterations(victim):
    net, x, y = victim
    settings = dict(c_init=2.0, binary_search_steps=1, max_iterations=40, lr=0.1, abort_early=False)
    l2 = {}
    for scale in (0.999999, 0.99):
        x_adv = CarliniWagnerL2(tanh_scale=scale, **settings)(net, x, y)
        with torch.no_grad():
            fooled = net(x_adv).argmax(1) != y
        assert fooled.float().mean() > 0.9
        l2[scale] = (x_adv - x).flatten(1).norm(dim=1)[fooled].mean().item()
    assert l2[0.99] < l2[0.999999], l2


@pytest.mark.parametrize("name", FAST)
def test_attack_keeps_range_and_leaves_the_model_untouched(victim, name):
    net, x, y = victim
    net = copy.deepcopy(net).train()  # a model found in training mode, with stale gradients
    net(x).sum().backward()
    state = copy.deepcopy(net.state_dict())  # includes batch-norm running statistics
    grads = [p.grad.clone() for p in net.parameters()]
    x_adv = FAST[name](net, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert net.training and all(m.training for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    for p, g in zip(net.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)


@pytest.mark.parametrize("name", FAST)
def test_attack_repeats_and_a_batch_equals_its_images_alone(victim, name):
    net, x, y = victim
    x, y = x[:6], y[:6]
    attack = FAST[name]
    batch = attack(net, x, y)
    assert torch.equal(batch, attack(net, x, y))
    alone = torch.cat([attack(net, x[i : i + 1], y[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(batch, alone, atol=1e-4), "images influence each other within a batch"


@pytest.mark.parametrize(
    "make", [lambda seed: PGD(eps=0.1, steps=2, seed=seed), lambda seed: JSMA(gamma=0.05, seed=seed)]
)
def test_seed_changes_the_random_choices(victim, make):
    net, x, y = victim
    assert not torch.equal(make(0)(net, x, y), make(1)(net, x, y))


def test_attack_works_under_inference_mode(victim):
    net, x, y = victim
    with torch.inference_mode():
        x_adv = FGSM()(net, x, y)
    assert (x_adv != x).any()


def test_run_attack_batches_like_one_call(victim):
    net, x, y = victim
    assert torch.equal(run_attack(FGSM(), net, x, y, batch_size=7, progress=False), FGSM()(net, x, y))


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: FGSM(eps=1.5), "eps"),
        (lambda: FGSM(eps=-0.1), "eps"),
        (lambda: PGD(steps=-1), "steps"),
        (lambda: MIFGSM(steps=0), "steps"),
        (lambda: MIFGSM(decay=-1), "decay"),
        (lambda: MIFGSM(eps=2), "eps"),
        (lambda: JSMA(gamma=1.2), "gamma"),
        (lambda: JSMA(theta=0), "theta"),
        (lambda: JSMA(target="nearest"), "target"),
        (lambda: CarliniWagnerL2(c_init=0), "c_init"),
        (lambda: CarliniWagnerL2(binary_search_steps=0), "binary_search_steps"),
        (lambda: CarliniWagnerL2(tanh_scale=1.0), "tanh_scale"),
        (lambda: build_attack("deepfool"), "deepfool"),
    ],
)
def test_bad_hyperparameters_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


@pytest.mark.parametrize(
    "x, y, argument",
    [
        (torch.full((2, 1, 28, 28), 1.5), torch.zeros(2, dtype=torch.int64), "x must"),
        (torch.rand(2, 28, 28), torch.zeros(2, dtype=torch.int64), "x must"),
        (torch.rand(2, 1, 28, 28), torch.zeros(3, dtype=torch.int64), "y must"),
        (torch.rand(2, 1, 28, 28), torch.tensor([0, 10]), "y must"),
        (torch.rand(2, 1, 28, 28), torch.tensor([-1, 0]), "y must"),
    ],
)
@pytest.mark.parametrize("name", ["fgsm", "jsma", "cw"])
def test_bad_batches_raise_value_error(victim, x, y, argument, name):
    with pytest.raises(ValueError, match=argument):
        build_attack(name)(victim[0], x, y)


def test_registry_names_the_attacks_and_jsma_defaults_to_the_papers_rule():
    assert set(ATTACKS) == {"fgsm", "pgd", "mifgsm", "di_fgsm", "ti_fgsm", "jsma", "jsma_pairs", "cw", "torchattacks"}
    assert build_attack("jsma", gamma=0.1).params()["gamma"] == 0.1
    assert build_attack("jsma").variant == "single" and build_attack("jsma_pairs").variant == "pairs"


class NaNAfter(nn.Module):
    """Wraps a model; its logits turn NaN for images whose first pixel moved away from the start."""

    def __init__(self, net: nn.Module, x0: torch.Tensor) -> None:
        super().__init__()
        self.net, self.x0 = net, x0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        moved = (x.flatten(1) - self.x0.flatten(1)[: len(x)]).abs().amax(1) > 0.05
        return torch.where(moved[:, None], torch.full_like(logits, float("nan")), logits)


def test_carlini_wagner_never_writes_nan(victim):
    net, x, y = victim
    x_adv = CarliniWagnerL2(**LIGHT_CW)(NaNAfter(net, x), x, y)
    assert torch.isfinite(x_adv).all()


@pytest.fixture(scope="module")
def real_lenet5(real_mnist):
    from advlit.bench.attacks import quick_train

    x_train, y_train = load_mnist(real_mnist, train=True)
    return quick_train("lenet5", x_train, y_train, epochs=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fgsm", "jsma", "cw"])
def test_real_mnist_lenet5_is_fooled_white_box(real_mnist, real_lenet5, name):
    net = real_lenet5
    x, y = (t[:100] for t in load_mnist(real_mnist, train=False))
    attack = {
        "fgsm": FGSM(),
        "jsma": JSMA(),
        "cw": CarliniWagnerL2(c_init=10.0, binary_search_steps=2, max_iterations=100, lr=0.1),
    }[name]
    assert accuracy(net, attack(net, x, y), y) < 0.5


def test_attack_benchmark_prints_a_row_per_attack(mnist_dir, capsys):
    from advlit.bench.attacks import attacks

    attacks(str(mnist_dir), archs=["lenet5"], attacks={"fgsm": {}, "jsma": {"gamma": 0.02}}, images=10,
            batch_size=5, train_epochs=1, train_images=100, device="cpu")  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lenet5")]
    assert [r.split()[1] for r in rows] == ["fgsm", "jsma"]
    assert rows[0].split()[4] == "48", "the paper's Table 1 time is shown beside ours"


@pytest.mark.parametrize("variant", ["pairs", "single"])
def test_jsma_refilled_working_batch_gives_the_same_images(victim, variant):
    net, x, y = victim
    whole = JSMA(gamma=0.1, variant=variant)(net, x, y)
    assert torch.equal(JSMA(gamma=0.1, variant=variant, working_batch=7)(net, x, y), whole)


def test_carlini_wagner_more_search_steps_never_increase_an_images_l2(victim):
    net, x, y = victim
    l2 = {}
    for steps in (1, 3):
        x_adv = CarliniWagnerL2(**{**LIGHT_CW, "binary_search_steps": steps})(net, x, y)
        l2[steps] = (x_adv - x).flatten(1).norm(dim=1)
    fooled_at_first = l2[1] > 0  # an image without a success keeps x: any later success is a gain
    assert (l2[3][fooled_at_first] <= l2[1][fooled_at_first] + 1e-4).all()
    assert (l2[3] < l2[1] - 1e-3).any(), "later values of c find smaller perturbations"


@pytest.mark.parametrize("max_candidates", [64, 2])  # 2: every image takes the full D x D fallback
@pytest.mark.parametrize("seed", range(5))
def test_pair_search_finds_the_best_pair_of_the_full_search(seed, max_candidates, monkeypatch):
    monkeypatch.setattr(saliency, "MAX_CANDIDATES", max_candidates)
    gen = torch.Generator().manual_seed(seed)
    n, d = 12, 60
    u, v = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    domain = torch.rand(n, d, generator=gen) < 0.8
    domain[0] = False  # no pixel left
    domain[1, 2:] = False  # exactly one pair left
    p, q, ok = best_pairs(u, v, domain)
    su, sv = u[:, :, None] + u[:, None, :], v[:, :, None] + v[:, None, :]
    admissible = (su > 0) & (sv > 0) & domain[:, :, None] & domain[:, None, :] & ~torch.eye(d, dtype=torch.bool)
    brute = torch.where(admissible, su * sv, float("-inf")).flatten(1).amax(1)
    assert torch.equal(ok, brute > float("-inf"))
    rows = ok.nonzero()[:, 0]
    assert (p[rows] != q[rows]).all() and domain[rows, p[rows]].all() and domain[rows, q[rows]].all()
    got = (u[rows, p[rows]] + u[rows, q[rows]]) * (v[rows, p[rows]] + v[rows, q[rows]])
    assert torch.allclose(got, brute[rows])


@pytest.mark.slow
def test_carlini_wagner_snap_leaves_unneeded_pixels_exact(real_victim):
    net, x, y = real_victim
    x, y = x[:40], y[:40]
    settings = dict(confidence=0.0, c_init=1.0, binary_search_steps=3, max_iterations=60, lr=0.1, tanh_scale=0.999)
    loose = CarliniWagnerL2(**settings)(net, x, y)
    snapped = CarliniWagnerL2(snap=0.002, **settings)(net, x, y)
    assert (loose != x).flatten(1).sum(1).float().mean() > 700, "without snap every pixel keeps its start offset"
    moved = (snapped - x).abs()
    assert ((moved == 0) | (moved >= 0.002)).all()
    assert (snapped != x).flatten(1).sum(1).float().mean() < 500
    with torch.no_grad():
        logits = net(snapped)
    real = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    changed = (snapped != x).flatten(1).any(1)
    assert changed.float().mean() > 0.9
    assert (other - real)[changed].min() >= 0, "every kept (snapped) example reaches the margin"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_registered_attack_has_a_matched_noise_control(name):
    from advlit.study.controls import norm_of

    if name == "torchattacks":
        pytest.importorskip("torchattacks", reason="the peers extra (pip install -e '.[peers]')")

    assert norm_of(build_attack(name)) in ("linf", "l0", "l2", "changes")


@pytest.mark.parametrize("variant", ["pairs", "single"])
@pytest.mark.parametrize("gamma", [0.1, 0.01])  # 0.01: most images stop at the step limit
def test_jsma_fixed_shapes_give_the_images_of_the_shrinking_loop(victim, variant, gamma):
    """The GPU path (every image stays in the batch, masked once finished) against the CPU's."""
    net, x, y = victim
    attack = JSMA(gamma=gamma, variant=variant)
    t = (y + 1 + torch.arange(len(y)) % 9) % 10
    shrinking = attack.targeted_shrinking(net, x, t)
    assert not torch.equal(shrinking, x)
    assert torch.equal(attack.targeted_fixed(net, x, t), shrinking)


class BatchSizes(nn.Module):
    """Wraps a model and records the size of every batch it sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.sizes = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.net(x)


def test_carlini_wagner_fixed_shapes_give_the_search_of_the_shrinking_loop(victim):
    net, x, y = victim
    attack = CarliniWagnerL2(**LIGHT_CW)
    c = torch.full((len(x),), 2.0)
    runs, seen = [], []
    for step in (attack.search_step, attack.search_step_fixed):
        best_l2, best_adv = torch.full((len(x),), float("inf")), x.clone()
        model = BatchSizes(net)
        runs.append((step(model, x, y, c, best_l2, best_adv), best_l2, best_adv))
        seen.append(model.sizes)
    assert min(seen[0]) < len(x), "images left the shrinking loop early, so the masking is exercised"
    assert set(seen[1]) == {len(x)}
    (s1, l1, a1), (s2, l2, a2) = runs
    assert s1.any() and torch.equal(s1, s2)
    torch.testing.assert_close(l2, l1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a2, a1, rtol=0, atol=1e-5)


def test_carlini_wagner_fixed_shapes_never_write_nan(victim, caplog):
    net, x, y = victim
    attack = CarliniWagnerL2(**LIGHT_CW)
    best_l2, best_adv = torch.full((len(x),), float("inf")), x.clone()
    attack.search_step_fixed(NaNAfter(net, x), x, y, torch.full((len(x),), 2.0), best_l2, best_adv)
    assert torch.isfinite(best_adv).all()
    assert "non-finite" in caplog.text


@pytest.mark.parametrize("make", [lambda: CarliniWagnerL2(**LIGHT_CW), lambda: JSMA(gamma=0.1),
                                  lambda: JSMA(gamma=0.1, target="best"),
                                  lambda: JSMA(gamma=0.1, variant="pairs", working_batch=7)])  # fmt: skip
def test_an_attack_gives_the_same_images_through_its_gpu_path(victim, make, monkeypatch):
    """The whole call (dispatch, chunks, targets) with the fixed-shape loops, here on the CPU."""
    from advlit.attacks import carlini_wagner, jsma

    net, x, y = victim
    attack = make()
    shrinking = attack(net, x, y)
    for module in (carlini_wagner, jsma):
        monkeypatch.setattr(module, "fixed_shapes", lambda x: True)
    fixed = attack(net, x, y)
    torch.testing.assert_close(fixed, shrinking, rtol=0, atol=1e-5)
