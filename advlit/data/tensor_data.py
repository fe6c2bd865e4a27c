"""A LightningDataModule over device-resident tensors: batched without a DataLoader, the clean
training images augmented per batch on the device. Surrogates train on it directly; the MNIST
DataModule adds loading and the adversarial mixes."""

import torch
from lightning.pytorch import LightningDataModule
from typing_extensions import override

from advlit.data.augment import Augment
from advlit.data.batches import TensorBatches
from advlit.runtime.errors import ConfigError


def check_divisible(batch_size: int, world_size: int) -> None:
    """A ConfigError when ``world_size`` processes cannot take equal shares of the global batch."""
    if batch_size % world_size:
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch and must divide among the {world_size} processes "
            f"(devices x nodes); give a multiple of {world_size}"
        )


class TensorData(LightningDataModule):
    """Training and test tensors (set ``train_x``, ``train_y``, ``test_x``, ``test_y``) in batches.

    Args:
        batch_size: training batch size over all processes (the global batch: each of W processes
            takes ``batch_size / W`` images per step, so 1 or W devices take the same steps).
        eval_batch_size: batch size for validation and test.
        seed: seed of the shuffling and of the augmentation.
        augmenter: the augmentation of the clean training images.
        augment: whether to apply it.
    """

    def __init__(self, batch_size: int, eval_batch_size: int, seed: int, augmenter: Augment, augment: bool) -> None:
        super().__init__()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.augmenter, self.augment = augmenter, augment
        self.train_x = self.train_y = self.test_x = self.test_y = None
        self.train_adv: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        """The training device (the CPU when used without a Trainer)."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _ranks(self) -> dict[str, int]:
        if self.trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training mix as ``(x, y, clean)``: the clean set, then one adversarial copy per
        attack in ``train_adv``; ``clean`` marks the images to augment. It stays on the CPU, so a step
        learns which images to augment without waiting on the device."""
        xs = [self.train_x, *self.train_adv.values()]
        clean = torch.zeros(len(self.train_y) * len(xs), dtype=torch.bool)
        clean[: len(self.train_y)] = True
        return torch.cat(xs), self.train_y.repeat(len(xs)), clean

    def process_batch_size(self) -> int:
        """This process's share of the global batch; a ConfigError when the processes cannot share it."""
        world = self._ranks()["world_size"]
        check_divisible(self.batch_size, world)
        return self.batch_size // world

    @override
    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(
            self.train_tensors(),
            self.process_batch_size(),
            shuffle=True,
            seed=self.seed,
            epoch_fn=self._epoch,
            equal_shards=True,
            with_seed=True,
            **self._ranks(),
        )

    @override
    def val_dataloader(self) -> TensorBatches:
        return TensorBatches((self.test_x, self.test_y), self.eval_batch_size, **self._ranks())

    @override
    def test_dataloader(self) -> TensorBatches:
        return self.val_dataloader()

    @override
    def transfer_batch_to_device(self, batch: tuple, device: torch.device, dataloader_idx: int) -> tuple:
        """Images and labels to ``device``; a training batch's clean mask stays on the host."""
        if len(batch) == 4:
            x, y, clean, seed = batch
            return (*super().transfer_batch_to_device((x, y), device, dataloader_idx), clean, seed)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    @override
    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment the clean images of a training batch; adversarial ones pass unchanged.

        The clean mask is read on the host and the images are gathered by position (a fixed shape),
        so the step never waits on the device; the result is the same as with a boolean mask.
        """
        if len(batch) == 2:
            return batch
        x, y, clean, seed = batch
        clean = clean.cpu()
        count = int(clean.sum())
        if self.augment and count:
            generator = torch.Generator().manual_seed(seed)  # a CPU stream: the same draws on any device
            if count == len(x):
                x = self.augmenter(x, generator)
            else:
                at = clean.nonzero()[:, 0].to(x.device, non_blocking=True)
                x = x.index_copy(0, at, self.augmenter(x.index_select(0, at), generator))
        return x, y
