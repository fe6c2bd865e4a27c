"""Networks (plain ``nn.Module``) and the one LightningModule that trains them."""

from advlit.models.classifier import ARCHS, ArchName, Classifier, build_network
from advlit.models.lenet5 import LeNet5
from advlit.models.resnet18 import ResNet18

__all__ = ["ARCHS", "ArchName", "Classifier", "LeNet5", "ResNet18", "build_network"]
