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


def _train_steps(channels_last: bool, steps: int = 20) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = build_network("lenet5", channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(steps, 32, 1, 28, 28, generator=gen), torch.randint(0, 10, (steps, 32), generator=gen)
    for xb, yb in zip(x, y, strict=True):
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt = x[0].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(xt).logsumexp(1).sum(), xt)
    return net, grad


def test_channels_last_trains_the_same_network_to_float_noise():
    fast, fast_grad = _train_steps(channels_last=True)
    plain, plain_grad = _train_steps(channels_last=False)
    assert fast.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    # Adam turns float noise in a near-zero gradient into up to a whole step (lr 1e-3) for a few weights
    # (17 of 627,200 moved 8e-5 when written); a layout bug (say, a wrong flatten order) moves them all.
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-4, msg=name)
    torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-4, atol=1e-6)  # attacks see the same gradients
    assert fast_grad.shape == (32, 1, 28, 28)


@pytest.mark.parametrize("saved_channels_last", [True, False], ids=["nhwc-saved", "nchw-saved"])
def test_weights_saved_in_either_layout_load_into_either(saved_channels_last):
    state = build_network("lenet5", channels_last=saved_channels_last).state_dict()
    plain = build_network("lenet5", channels_last=False)
    plain.load_state_dict(state)
    x = torch.rand(4, 1, 28, 28)
    fast = build_network("lenet5", channels_last=True)
    fast.load_state_dict(state)
    torch.testing.assert_close(fast.eval()(x), plain.eval()(x), rtol=1e-5, atol=1e-5)


def test_pooling_before_relu_is_the_same_function_and_gradient():
    net = LeNet5().eval()
    conv1, _, _, conv2, _, _ = net.features
    relu_first = torch.nn.Sequential(conv1, torch.nn.ReLU(), torch.nn.MaxPool2d(2), conv2, torch.nn.ReLU(),
                                     torch.nn.MaxPool2d(2))  # fmt: skip
    assert isinstance(net.features[1], torch.nn.MaxPool2d) and isinstance(net.features[2], torch.nn.ReLU)
    x = torch.rand(16, 1, 28, 28, requires_grad=True)
    fast = net.classifier(net.features((x - net.mean) / net.std))
    plain = net.classifier(relu_first((x - net.mean) / net.std))
    assert torch.equal(fast, plain)
    (g_fast,) = torch.autograd.grad(fast.logsumexp(1).sum(), x)
    (g_plain,) = torch.autograd.grad(plain.logsumexp(1).sum(), x)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-5, atol=1e-7)
