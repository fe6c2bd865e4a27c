"""Batches of device-resident tensors without a DataLoader: no per-sample collation."""

import hashlib
import math
from collections.abc import Callable, Iterator

import torch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (seed, epoch, rank, batch...)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class TensorBatches:
    """Iterate over aligned tensors in batches, sharded over ranks.

    Shuffled batches are drawn from ``seed`` and the epoch that ``epoch_fn`` returns, so a
    resumed run sees the same order. ``equal_shards`` (training under DDP) trims the shuffled
    order to a multiple of ``world_size`` and gives rank r the r-th slice of each global batch of
    ``batch_size * world_size`` images: the ranks' step i together hold the images one process
    would take at step i with the global batch, and every rank the same number. Without it the
    shards are disjoint and cover every sample exactly once (exact evaluation, no padding).
    With ``with_seed`` every batch ends with an int seed for its augmentation.

    Each tensor is indexed on its own device: a CPU tensor (a mask the step reads on the host) stays
    on the CPU, so reading it costs the accelerator no sync.
    """

    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] = lambda: 0,
        equal_shards: bool = False,
        with_seed: bool = False,
    ) -> None:
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch_fn = epoch_fn
        self.equal_shards = equal_shards
        self.with_seed = with_seed

    def _shard_size(self) -> int:
        n = len(self.tensors[0])
        if self.equal_shards:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        n = len(self.tensors[0])
        epoch = self.epoch_fn()
        if self.shuffle:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        if self.equal_shards:
            order = order[: n - n % self.world_size]
            global_batch = self.batch_size * self.world_size
            parts = [
                order[a : a + global_batch].view(self.world_size, -1)[self.rank]
                for a in range(0, len(order), global_batch)
            ]
            index = torch.cat(parts) if parts else order[:0]
            bounds = torch.tensor([0, *(len(p) for p in parts)]).cumsum(0).tolist()
        else:
            index = order[self.rank :: self.world_size]
            bounds = [*range(0, len(index), self.batch_size), len(index)]
        # this rank's images in the order it takes them, once per device the tensors live on
        on_device = {device: index.to(device) for device in {t.device for t in self.tensors}}
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            out = tuple(t[on_device[t.device][a:b]] for t in self.tensors)
            yield (*out, mix_seed(self.seed, epoch, self.rank, i)) if self.with_seed else out
