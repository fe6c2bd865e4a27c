"""The epoch bar says ``Epoch 12/50`` (Lightning's says ``Epoch 11``, counting from 0)."""

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class EpochOfTotal(Callback):
    """Names the training bar ``Epoch k/N`` (1-based) when the epoch's first batch starts."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        bar = trainer.progress_bar_callback
        if batch_idx == 0 and isinstance(bar, TQDMProgressBar) and bar.is_enabled:
            bar.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
