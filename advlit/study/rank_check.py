"""Every rank of a run must hold the same sets: their digests checked against global rank 0's."""

import torch

from advlit.runtime.errors import ConfigError


def check_ranks_agree(trainer, digests: dict[str, str], what: str) -> None:
    """A ConfigError on every rank when any rank's ``digests`` (set name -> SHA-256) differ from rank 0's.

    Under DDP every process loads (or makes) the cached sets itself; with a cache per node, or a set
    made again on one node, ranks would score or train on different data without a word. Every rank
    joins the same two collectives and raises together, so none is left waiting."""
    if trainer.world_size < 2:
        return
    reference = trainer.strategy.broadcast(dict(digests), src=0)
    differ = sorted(n for n in set(digests) | set(reference) if digests.get(n) != reference.get(n))
    flag = torch.tensor(float(bool(differ)), device=trainer.strategy.root_device)
    if float(trainer.strategy.reduce(flag, reduce_op="sum")) > 0:
        mine = f"; this rank ({trainer.global_rank}) differs on {', '.join(differ)}" if differ else ""
        raise ConfigError(
            f"the ranks hold different {what}{mine}: give every node one cache (--data.cache_dir on a shared "
            "file system), or build it before the run (advlit networks seed, then one process)"
        )
