"""MNIST LightningDataModule: tensors on the training device, batched augmentation, adversarial mixes."""

import dataclasses
import time

import torch
from typing_extensions import override

from advlit.attacks import AttackName, build_attacks
from advlit.data.augment import Augment, Interpolation
from advlit.data.mnist import download_mnist, load_mnist
from advlit.data.tensor_data import TensorData
from advlit.runtime.errors import ConfigError
from advlit.study import adversarial_sets, surrogate
from advlit.study.cache import tensor_digest
from advlit.study.quality import set_quality
from advlit.study.rank_check import check_ranks_agree
from advlit.study.surrogate import SurrogateSpec


class MNISTDataModule(TensorData):
    """MNIST train (60k) and test (10k) sets kept as tensors on the training device.

    Validation and test use MNIST's official 10k test set, as in the paper.

    Args:
        data_dir: folder that holds (or receives) ``MNIST/raw/``.
        download: download MNIST in ``prepare_data`` when the files are missing.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test.
        augment: apply the paper's augmentation to the clean training images.
        rotate_degrees: largest rotation angle.
        translate: largest shift as a fraction of the image size (torchvision's ``translate``:
            0.2 of 28 px rounds to at most 6 whole pixels, the paper's "maximum of 6 pixels").
        erase_p: probability of random erasing.
        erase_max_area: largest erased fraction of the image.
        interpolation: resampling of the rotation, ``nearest`` (torchvision's default) or ``bilinear``.
        seed: seed of the shuffling and of the augmentation.
        train_limit: keep only the first ``train_limit`` training images (None: all).
        test_limit: keep only the first ``test_limit`` test images (None: all).
        train_attacks: attacks whose examples of the training set join the mix, one copy each
            (empty: clean training).
        attack_params: hyperparameters per attack name (missing: the paper's Table 1 settings).
        source_arch: the defender's source network (set from ``model.arch`` by the CLI).
        source_seed: seed of the defender's source network.
        source_epochs: training epochs of the defender's source network.
        source_lr: Adam's learning rate for it (set from ``model.lr`` by the CLI).
        extra_source_seeds: ensemble adversarial training (Tramer et al. 2018): more source networks
            (the source's architecture and augmentation, these seeds); each attack's training copy
            is split among the sources, image i made on source ``i mod k`` (so the mix keeps the
            size of a one-source row, and each image has one adversarial copy per attack).
        extra_source_seed_offset: added to every extra source's seed (``advlit reproduce --seeds``
            reseeds with it, as it moves ``source_seed``).
        cache_dir: cache of surrogates and adversarial sets (None: ``$ADVLIT_CACHE`` or
            ``~/.cache/advlit``).
        attack_batch_size: images per attack batch (None: 1000 on a GPU, 100 on the CPU, where
            smaller batches run faster).
        progress: progress bars for surrogate training and attack generation.
    """

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        augment: bool = True,
        rotate_degrees: float = 20.0,
        translate: float = 0.2,
        erase_p: float = 0.5,
        erase_max_area: float = 0.3,
        interpolation: Interpolation = "nearest",
        seed: int = 0,
        train_limit: int | None = None,
        test_limit: int | None = None,
        train_attacks: list[AttackName] = [],
        attack_params: dict[str, dict] = {},
        source_arch: str = "lenet5",
        source_seed: int = 1,
        source_epochs: int = 50,
        source_lr: float = 1e-4,
        extra_source_seeds: list[int] = [],
        extra_source_seed_offset: int = 0,
        cache_dir: str | None = None,
        attack_batch_size: int | None = None,
        progress: bool = True,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        for name, value in (("train_limit", train_limit), ("test_limit", test_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be >= 1 or null (all images)")
        augmenter = Augment(rotate_degrees, translate, erase_p, erase_max_area, interpolation)
        super().__init__(batch_size, eval_batch_size, seed, augmenter, augment)
        if attack_batch_size is not None and attack_batch_size < 1:
            raise ConfigError(f"attack_batch_size={attack_batch_size} must be >= 1 or null (automatic)")
        self.attacks = build_attacks(train_attacks, attack_params, "train_attacks")
        self.source_spec = SurrogateSpec(source_arch, augment, source_seed, source_epochs, "defender", source_lr)
        extra = [seed + extra_source_seed_offset for seed in extra_source_seeds]
        if source_seed in extra or len(set(extra)) < len(extra):
            raise ConfigError(
                f"extra_source_seeds={extra_source_seeds} (offset {extra_source_seed_offset}) repeats a source "
                f"(source_seed {source_seed})"
            )
        self.save_hyperparameters()
        self.timings: dict[str, float] = {}
        self.made: dict[str, float | None] = {}  # seconds each cached stage took to make, wherever it was made
        self.set_quality: dict[str, dict] = {}

    @override
    def prepare_data(self) -> None:
        if self.hparams.download:
            download_mnist(self.hparams.data_dir)

    @override
    def setup(self, stage: str) -> None:
        if self.train_adv or (self.train_x is not None and not self.attacks):
            return
        self.load_data()
        self.source_spec = dataclasses.replace(self.source_spec, batch_size=self.global_batch_size)
        if self.attacks:
            self.train_adv = self.make_train_sets()
            if self.trainer is not None:
                digests = {name: tensor_digest(x) for name, x in self.train_adv.items()}
                check_ranks_agree(self.trainer, digests, "adversarial training sets")

    def load_data(self) -> None:
        """Load MNIST onto the device (once) and fingerprint the training set for the cache keys."""
        if self.train_x is not None:
            if self.train_x.device != self.device:  # loaded before the Trainer chose the device
                for name in ("train_x", "train_y", "test_x", "test_y"):
                    setattr(self, name, getattr(self, name).to(self.device))
            return
        hp = self.hparams
        train_x, train_y = load_mnist(hp.data_dir, train=True)
        test_x, test_y = load_mnist(hp.data_dir, train=False)
        self.train_x, self.train_y = (
            train_x[: hp.train_limit].to(self.device),
            train_y[: hp.train_limit].to(self.device),
        )
        self.test_x, self.test_y = test_x[: hp.test_limit].to(self.device), test_y[: hp.test_limit].to(self.device)
        self.train_digest = tensor_digest(self.train_x, self.train_y)

    @property
    def source_specs(self) -> list[SurrogateSpec]:
        """The defender's source networks: his source, then one per extra seed (ensemble adversarial training)."""
        offset = self.hparams.extra_source_seed_offset
        extra = [dataclasses.replace(self.source_spec, seed=seed + offset) for seed in self.hparams.extra_source_seeds]
        return [self.source_spec, *extra]

    def make_train_sets(self) -> dict[str, torch.Tensor]:
        """The defender's adversarial training sets, made on his source network(s) (or loaded): with k
        sources, image i's copy is made on source ``i mod k``."""
        hp = self.hparams
        start = time.perf_counter()
        sources = [surrogate.load_or_train(spec, self.train_x, self.train_y, self.augmenter, self.train_digest,
                                           hp.cache_dir, hp.progress) for spec in self.source_specs]  # fmt: skip
        made_s = [s.made_s for s in sources]
        self.made["defender_surrogate_s"] = None if None in made_s else sum(made_s)
        self.timings["defender_surrogate_s"] = time.perf_counter() - start
        k, sets = len(sources), {}
        for name, attack in self.attacks.items():
            start, made_total, x_adv = time.perf_counter(), 0.0, torch.empty_like(self.train_x)
            for j, source in enumerate(sources):
                part = slice(None) if k == 1 else slice(j, None, k)
                x, y = self.train_x[part], self.train_y[part]
                digest = self.train_digest if k == 1 else tensor_digest(x, y)
                made = adversarial_sets.load_or_make(
                    source.net, source.key, name, attack, "train", x, y, digest,
                    hp.cache_dir, hp.attack_batch_size, hp.progress, source.weights,
                )  # fmt: skip
                x_adv[part] = made.x_adv
                made_total = None if made_total is None or made.made_s is None else made_total + made.made_s
                if k > 1:
                    self.set_quality[f"defender/{name}/source{j}"] = set_quality(source.net, x, y, made.x_adv)
            sets[name] = x_adv
            self.timings[f"defender_{name}_train_set_s"] = time.perf_counter() - start
            self.made[f"defender_{name}_train_set_s"] = made_total
            if k == 1:
                self.set_quality[f"defender/{name}"] = set_quality(sources[0].net, self.train_x, self.train_y, x_adv)
        return sets

    @property
    def global_batch_size(self) -> int:
        """Images per optimiser step over all processes: ``data.batch_size`` itself, on any number of
        devices (surrogates train with it on one device)."""
        return self.hparams.batch_size
