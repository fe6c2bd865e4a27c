import pytest
import torch

from advlit.models import ARCHS, Classifier, LeNet5, ResNet18, build_network


@pytest.mark.parametrize(("cls", "count"), [(LeNet5, 648_226), (ResNet18, 11_175_370)], ids=["lenet5", "resnet18"])
def test_parameter_count_matches_the_paper(cls, count):
    assert sum(p.numel() for p in cls().parameters()) == count


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_maps_images_to_ten_logits(arch):
    net = build_network(arch).eval()
    logits = net(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()


def test_normalisation_lives_inside_the_model():
    net = LeNet5()
    assert "mean" not in net.state_dict()  # a non-persistent buffer, not a parameter
    assert float(net.mean) == pytest.approx(0.1307)


def test_unknown_architecture_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="arch='vgg'.*lenet5"):
        build_network("vgg")


def test_classifier_rejects_a_bad_learning_rate():
    with pytest.raises(ValueError, match="lr=0"):
        Classifier(lr=0)


def test_classifier_uses_adam_with_the_papers_learning_rate():
    opt = Classifier().configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == 1e-4
