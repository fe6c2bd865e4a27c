"""Known third-party noise kept off the console, in one place: Lightning's product tips, deprecation
warnings that advlit cannot act on (they come from Lightning or jsonargparse code), and the warning
that every resumed training brings."""

import logging
import warnings

KNOWN_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # torch's pytree, called by Lightning
    r".*skip_none parameter was deprecated.*",  # jsonargparse, called by LightningCLI
    r".*does not have many workers.*",  # advlit batches tensors on the device, without workers
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed training, by design
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip")


def quiet_third_party() -> None:
    """Drop Lightning's "Tip" lines and the known deprecation warnings (idempotent)."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
