"""The one LightningModule: an MNIST classifier around LeNet5 or ResNet18."""

from typing import Literal

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from advlit.models.lenet5 import LeNet5
from advlit.models.resnet18 import ResNet18
from advlit.runtime.devices import default_adam
from advlit.runtime.errors import ConfigError

ArchName = Literal["lenet5", "resnet18"]
ARCHS: dict[str, type[nn.Module]] = {"lenet5": LeNet5, "resnet18": ResNet18}


def build_network(arch: str, channels_last: bool = True) -> nn.Module:
    """Return a fresh network by name; raise a ValueError listing the choices.

    ``channels_last`` stores the conv weights NHWC, so convolutions and pooling run in the layout
    oneDNN and cuDNN are fastest in (LeNet5 trains ~1.5x faster on our CPU; same results to float
    noise). A pre-hook restrides each input batch to NHWC too (a 100 KB copy per 128 images): a
    1-channel NCHW batch counts as channels-last contiguous, yet oneDNN only takes the fast path
    when the strides say NHWC.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is unknown; choose one of {sorted(ARCHS)}")
    net = ARCHS[arch]()
    if channels_last:
        net.to(memory_format=torch.channels_last)
        net.register_forward_pre_hook(_nhwc_input)
    return net


def _nhwc_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].to(memory_format=torch.channels_last), *args[1:])


class Classifier(LightningModule):
    """Trains ``arch`` with Adam and cross-entropy; logs loss and accuracy.

    Args:
        arch: the network, ``lenet5`` or ``resnet18``.
        lr: Adam's learning rate (the paper's 1e-4).
        weight_decay: Adam's L2 penalty (the paper uses none).
        channels_last: NHWC weights, the faster layout (:func:`build_network`); results agree to float noise.
        fused_adam: Adam's fused kernel (one launch per step for all parameters); ``None``: on CUDA
            only, so a CPU run keeps the arithmetic of torch's default Adam.

    The training step reads nothing back from the device: the training accuracy is a batch mean
    that Lightning accumulates on the device (summed over the ranks at the epoch's end), and the
    validation metric skips its argument checks. Lightning itself reads ``train/loss`` for the
    logger every ``log_every_n_steps`` and for the progress bar at each redraw.
    """

    def __init__(
        self,
        arch: ArchName = "lenet5",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        channels_last: bool = True,
        fused_adam: bool | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ConfigError(f"model.lr={lr} must be positive")
        if not weight_decay >= 0:
            raise ConfigError(f"model.weight_decay={weight_decay} must be >= 0")
        self.save_hyperparameters()
        self.net = build_network(arch, channels_last)
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro", validate_args=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 10)`` for images ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        acc = (logits.detach().argmax(1) == y).float().mean()
        self.log("train/acc", acc, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)  # at epoch end
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log("val/acc/clean", self.val_acc, prog_bar=True)

    @property
    def adam_kind(self) -> str:
        """``fused``, or ``default`` (torch's choice for the device): the Adam this module trains with."""
        fused = self.hparams.fused_adam
        return default_adam(self.device) if fused is None else ("fused" if fused else "default")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        fused = {"fused": True} if self.adam_kind == "fused" else {}
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, **fused)
