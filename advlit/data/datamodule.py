"""MNIST LightningDataModule: tensors on the training device, batched augmentation, adversarial mixes."""

import dataclasses
import time

import torch
from lightning.pytorch import LightningDataModule
from typing_extensions import override

from advlit.attacks import AttackName, build_attacks
from advlit.data.augment import Augment, Interpolation
from advlit.data.batches import TensorBatches
from advlit.data.mnist import download_mnist, load_mnist
from advlit.errors import ConfigError
from advlit.study import adversarial_sets, surrogate
from advlit.study.cache import tensor_digest
from advlit.study.quality import set_quality
from advlit.study.surrogate import SurrogateSpec


class MNISTDataModule(LightningDataModule):
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
        eval_batch_size: int = 1000,
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
        cache_dir: str | None = None,
        attack_batch_size: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        for name, value in (("train_limit", train_limit), ("test_limit", test_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be >= 1 or null (all images)")
        self.augmenter = Augment(rotate_degrees, translate, erase_p, erase_max_area, interpolation)
        if attack_batch_size is not None and attack_batch_size < 1:
            raise ConfigError(f"attack_batch_size={attack_batch_size} must be >= 1 or null (automatic)")
        self.attacks = build_attacks(train_attacks, attack_params, "train_attacks")
        self.source_spec = SurrogateSpec(source_arch, augment, source_seed, source_epochs, "defender", source_lr)
        self.save_hyperparameters()
        self.train_x = self.train_y = self.test_x = self.test_y = None
        self.train_adv: dict[str, torch.Tensor] = {}
        self.timings: dict[str, float] = {}
        self.set_quality: dict[str, dict] = {}

    @override
    def prepare_data(self) -> None:
        if self.hparams.download:
            download_mnist(self.hparams.data_dir)

    @property
    def device(self) -> torch.device:
        """The training device (the CPU when used without a Trainer)."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    @override
    def setup(self, stage: str) -> None:
        if self.train_x is not None:
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
        self.source_spec = dataclasses.replace(self.source_spec, batch_size=self.global_batch_size)
        if self.attacks:
            self.train_adv = self.make_train_sets()

    def make_train_sets(self) -> dict[str, torch.Tensor]:
        """The defender's adversarial training sets, made on his source network (or loaded)."""
        hp = self.hparams
        start = time.perf_counter()
        source, key = surrogate.load_or_train(
            self.source_spec, self.train_x, self.train_y, self.augmenter, self.train_digest, hp.cache_dir, hp.progress
        )
        self.timings["defender_surrogate_s"] = time.perf_counter() - start
        sets = {}
        for name, attack in self.attacks.items():
            start = time.perf_counter()
            sets[name], _ = adversarial_sets.load_or_make(
                source, key, name, attack, "train", self.train_x, self.train_y, self.train_digest,
                hp.cache_dir, hp.attack_batch_size, hp.progress,
            )  # fmt: skip
            self.timings[f"defender_{name}_train_set_s"] = time.perf_counter() - start
            self.set_quality[f"defender/{name}"] = set_quality(source, self.train_x, self.train_y, sets[name])
        return sets

    @property
    def global_batch_size(self) -> int:
        """Images per optimiser step over all processes (surrogates train with it on one device)."""
        return self.hparams.batch_size * self._ranks()["world_size"]

    def _ranks(self) -> dict[str, int]:
        if self.trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training mix as ``(x, y, clean)``: the clean set, then one adversarial copy per
        attack; ``clean`` marks the images to augment."""
        xs = [self.train_x, *self.train_adv.values()]
        clean = torch.zeros(len(self.train_y) * len(xs), dtype=torch.bool, device=self.train_y.device)
        clean[: len(self.train_y)] = True
        return torch.cat(xs), self.train_y.repeat(len(xs)), clean

    @override
    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(
            self.train_tensors(),
            self.hparams.batch_size,
            shuffle=True,
            seed=self.hparams.seed,
            epoch_fn=self._epoch,
            equal_shards=True,
            with_seed=True,
            **self._ranks(),
        )

    @override
    def val_dataloader(self) -> TensorBatches:
        return TensorBatches((self.test_x, self.test_y), self.hparams.eval_batch_size, **self._ranks())

    @override
    def test_dataloader(self) -> TensorBatches:
        return self.val_dataloader()

    @override
    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment the clean images of a training batch; adversarial ones pass unchanged."""
        if len(batch) == 2:
            return batch
        x, y, clean, seed = batch
        if self.hparams.augment and clean.any():
            generator = torch.Generator(device=x.device).manual_seed(seed)
            if clean.all():
                x = self.augmenter(x, generator)
            else:
                x = x.clone()
                x[clean] = self.augmenter(x[clean], generator)
        return x, y
