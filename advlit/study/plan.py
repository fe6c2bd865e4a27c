"""The plan of a run, printed before it starts: every stage cached or to make, with a time estimate.

Estimates come from speeds measured here, on the run's device, in about a second: one training step
of the architecture, one forward pass with an input gradient, and one plain forward pass. The work
per image of each attack is its expected number of such passes (an estimate: early stopping varies).
"""

import dataclasses
import math
import re
import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from advlit.attacks import FGSM, JSMA, PGD, Attack, CarliniWagnerL2
from advlit.models import build_network
from advlit.runtime.progress import duration
from advlit.study import adversarial_sets, surrogate
from advlit.study.cache import content_key, tensor_digest
from advlit.study.transfer import check_window

C_W_ABORT = 0.9  # share of C&W's iteration budget used with abort early (measured: 261-268 of 300)
JSMA_STEPS = 70  # steps per image at gamma 0.2 on a LeNet5 (measured mean L0 50-75 for one pixel a step)


@dataclass(frozen=True)
class Stage:
    """One stage of a run."""

    name: str
    cached: bool
    seconds: float
    key: str = ""  # its cache file (shared by the runs that need it); "" for the run's own network
    epoch_seconds: tuple[float, ...] = ()  # the run's own network: each epoch's share, for a resumed run


@dataclass(frozen=True)
class Speeds:
    """Seconds per training batch, per image for a gradient pass and per image for a forward pass."""

    train_batch: float
    grad_pass: float
    forward: float


def measure(
    arch: str, device: torch.device, batch_size: int, repeats: int = 3, attack_batch: int | None = None
) -> Speeds:
    """Time the three kinds of pass on random images (first call of each not counted): a training step
    at ``batch_size``, the per-image passes at ``attack_batch`` (None: the attacks' default, 1000 on a
    GPU and 100 on the CPU). The random number streams are restored afterwards, so the plan leaves the
    run's results untouched."""
    attack_batch = adversarial_sets.attack_batch_size(attack_batch, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _measure(arch, device, batch_size, repeats, attack_batch)


def _measure(arch: str, device: torch.device, batch_size: int, repeats: int, attack_batch: int) -> Speeds:
    net = build_network(arch).to(device)
    opt = torch.optim.Adam(net.parameters())
    x = torch.rand(batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    xa = torch.rand(attack_batch, 1, 28, 28, device=device)

    def timed(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / repeats

    def train_step() -> None:
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def grad_pass() -> None:
        xs = xa.clone().requires_grad_(True)
        torch.autograd.grad(net(xs).sum(), xs)

    def forward() -> None:
        with torch.no_grad():
            net(xa)

    return Speeds(timed(train_step), timed(grad_pass) / attack_batch, timed(forward) / attack_batch)


def passes_per_image(attack: Attack) -> float:
    """Expected gradient passes per attacked image (100 for an attack this does not know)."""
    if isinstance(attack, FGSM):
        return 1.0
    if isinstance(attack, PGD) or isinstance(getattr(attack, "steps", None), int):  # PGD, MI-, DI-, TI-FGSM
        return float(attack.steps)
    if isinstance(attack, JSMA):
        steps = JSMA_STEPS * attack.gamma / 0.2 / (2 if attack.variant == "pairs" else 1)
        return 3 * steps * (9 if attack.target == "best" else 1)  # a forward and two gradients a step
    if isinstance(attack, CarliniWagnerL2):
        return C_W_ABORT * attack.binary_search_steps * attack.max_iterations
    return 100.0


def stages(data, transfer, max_epochs: int, world_size: int, speeds: Speeds, device: torch.device) -> list[Stage]:
    """Every stage of the run, in order, from the data module and the transfer callback; ``device``: the
    run's (the data may still be on the CPU), whose default attack batch size keys some attacks' sets.
    A window outside the run's epochs is a ConfigError, as before a fit."""
    data.load_data()
    batch = data.hparams.batch_size  # the global batch, on any number of devices
    n_train, n_test = len(data.train_y), len(data.test_y)
    batches = math.ceil(n_train / batch)
    out = []

    def network(owner: str, spec) -> tuple[str, Stage]:
        spec = dataclasses.replace(spec, batch_size=batch)
        key, path = surrogate.surrogate_path(spec, data.augmenter, data.train_digest, data.hparams.cache_dir)
        name = f"{owner}'s network ({spec.arch}, {spec.epochs} epochs, augment {spec.augment}, seed {spec.seed})"
        return key, Stage(name, path.exists(), spec.epochs * batches * speeds.train_batch, str(path))

    def sets(owner: str, key: str, attacks: dict, split: str, x, y, members: int = 1) -> list[Stage]:
        digest = data.train_digest if split == "train" and len(x) == len(data.train_x) else tensor_digest(x, y)
        chosen = data.hparams.attack_batch_size if split == "train" else transfer.attack_batch_size
        attack_batch = adversarial_sets.attack_batch_size(chosen, device)
        found = []
        for name, attack in attacks.items():
            _, path = adversarial_sets.set_path(key, name, attack, split, digest, data.hparams.cache_dir, attack_batch)
            made = 0 if path.exists() else adversarial_sets.parts_done(path, len(x))
            label = f"{owner}: {name} on the {split} set ({len(x):,} images{f', {made:,} made' if made else ''})"
            seconds = (len(x) - made) * passes_per_image(attack) * speeds.grad_pass * members  # a pass per member
            found.append(Stage(label, path.exists(), seconds, str(path)))
        return found

    if data.attacks:
        specs = getattr(data, "source_specs", [data.source_spec])
        for j, spec in enumerate(specs):
            key, stage = network("defender's source" + (f" {j + 1}" if len(specs) > 1 else ""), spec)
            part = slice(None) if len(specs) == 1 else slice(j, None, len(specs))
            x, y = data.train_x[part], data.train_y[part]
            out += [stage, *sets("defender", key, data.attacks, "train", x, y)]
    if transfer is not None and transfer.attacks:
        for name, members in transfer.specs.items():
            keys = []
            for i, spec in enumerate(members):
                key, stage = network(f"attacker {name}" + (f" member {i + 1}" if len(members) > 1 else ""), spec)
                keys.append(key)
                out.append(stage)
            key = keys[0] if len(keys) == 1 else content_key({"ensemble": keys})
            out += sets(f"attacker {name}", key, transfer.attacks, "test", data.test_x, data.test_y, len(members))
    copies = 1 + len(data.attacks)
    n_sets = 1 + (2 * len(transfer.attacks) * len(transfer.specs) if transfer is not None else 0)
    # training, scoring and the white-box attacks are split over the ranks (each trains on batch / world_size)
    epoch = (math.ceil(copies * n_train / batch) * speeds.train_batch + n_sets * n_test * speeds.forward) / world_size
    whitebox = whitebox_epoch(transfer, n_test, speeds) / world_size
    window = range(0)  # the epochs with white-box attacks
    if transfer is not None:
        window = range(transfer.window_start, check_window(transfer.window_start, transfer.window_end, max_epochs) + 1)
    each = tuple(epoch + (whitebox if e in window else 0.0) for e in range(1, max_epochs + 1))
    name = f"defended network: {max_epochs} epochs on {copies * n_train:,} images, {n_sets} test sets"
    out.append(Stage(name, False, sum(each), epoch_seconds=each))
    return out


def whitebox_epoch(transfer, n_test: int, speeds: Speeds) -> float:
    """Seconds of one window epoch's white-box attacks on the defended network: each attack's passes,
    and a forward pass to score it, on the first ``whitebox_images`` test images."""
    if transfer is None or not transfer.whitebox:
        return 0.0
    images = min(transfer.whitebox_images, n_test)
    return sum(images * (passes_per_image(a) * speeds.grad_pass + speeds.forward) for a in transfer.whitebox.values())


def remaining(stage: Stage, done: int, epochs: int) -> Stage:
    """The run's own network of ``epochs`` after ``done`` of them (from a checkpoint): what is left."""
    if not done:
        return stage
    left = stage.epoch_seconds[done:]
    seconds = sum(left) if stage.epoch_seconds else stage.seconds * (epochs - done) / max(epochs, 1)
    return Stage(f"{stage.name}, {done} done", False, seconds, stage.key, left)


def epochs_done(checkpoint_name: str | None) -> int:
    """Epochs a run resuming from a Lightning checkpoint (``epoch=3-step=...``, 0-based) has behind it."""
    found = re.match(r"epoch=(\d+)", checkpoint_name or "")
    return int(found.group(1)) + 1 if found else 0


def describe(plan: list[Stage]) -> list[str]:
    """The plan as lines: each stage, cached or to make with its estimate, then the total."""
    lines = ["plan (estimates from speeds measured on this device):"]
    for stage in plan:
        estimate = "" if stage.cached else duration(stage.seconds)
        lines.append(f"  {'cached ' if stage.cached else 'to make'}  {estimate:>8s}  {stage.name}")
    total = sum(s.seconds for s in plan if not s.cached)
    lines.append(f"  total to make: about {duration(total)}")
    return lines
