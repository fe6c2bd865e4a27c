"""Following a run: the epoch bar says ``Epoch 12/50`` (Lightning's counts from 0 and names no
total), and each finished epoch logs its time and the time left."""

import logging
import time

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

log = logging.getLogger(__name__)
BAR_REFRESH = 20  # batches between bar redraws: a background run's log grows 20x slower (no speed effect measured)


def duration(seconds: float) -> str:
    """Seconds as ``42 s``, ``17 min`` or ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_bar() -> TQDMProgressBar:
    """Lightning's bar, redrawn every :data:`BAR_REFRESH` batches instead of every batch."""
    return TQDMProgressBar(refresh_rate=BAR_REFRESH)


class EpochOfTotal(Callback):
    """Names the training bar ``Epoch k/N`` (1-based) when the epoch's first batch starts, and logs
    ``epoch k/N done in X; about Y left`` (the mean epoch time so far times the epochs left)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start, self.first_epoch = time.perf_counter(), trainer.current_epoch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        bar = trainer.progress_bar_callback
        if batch_idx == 0 and isinstance(bar, TQDMProgressBar) and bar.is_enabled:
            bar.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not hasattr(self, "start") or trainer.max_epochs in (None, -1):
            return
        done = trainer.current_epoch + 1
        per_epoch = (time.perf_counter() - self.start) / (done - self.first_epoch)
        left = per_epoch * (trainer.max_epochs - done)
        log.info(
            "epoch %d/%d done, %.0f s per epoch; about %.0f min left", done, trainer.max_epochs, per_epoch, left / 60
        )
