import pytest
import torch

from advlit.data import MNIST_FILES, TensorBatches, load_mnist
from advlit.data.batches import mix_seed
from advlit.runtime.errors import ConfigError, MissingDataError
from advlit.study.datamodule import MNISTDataModule


def test_loads_fixture_idx_files_as_pixels(mnist_dir):
    x, y = load_mnist(mnist_dir, train=True)
    assert x.shape == (600, 1, 28, 28) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))


def test_missing_files_give_one_error_naming_folder_and_files(tmp_path):
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path / "nowhere", train=True)
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert all(name in message for name in MNIST_FILES)
    assert "\n" not in message


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tv_mnist.MNIST, "download", offline)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(MissingDataError, match="could not download MNIST.*t10k-labels-idx1-ubyte"):
        dm.prepare_data()


def test_setup_limits_and_keeps_the_test_set_for_validation(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir), download=False, train_limit=100, test_limit=50)
    dm.setup("fit")
    assert dm.train_x.shape[0] == 100 and dm.test_x.shape[0] == 50
    batches = list(dm.val_dataloader())
    assert sum(len(b[0]) for b in batches) == 50
    assert torch.equal(torch.cat([b[0] for b in batches]), dm.test_x)


def test_train_batches_are_augmented_and_reshuffled_per_epoch(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir), download=False, batch_size=32)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 4  # x, y, clean mask, augmentation seed
    x, y = dm.on_after_batch_transfer(batch, 0)
    assert x.shape == (32, 1, 28, 28) and not torch.allclose(x, batch[0])
    epoch = {"n": 0}
    loader = TensorBatches((torch.arange(100),), 10, shuffle=True, seed=1, epoch_fn=lambda: epoch["n"])
    first = torch.cat([b[0] for b in loader])
    again = torch.cat([b[0] for b in loader])
    epoch["n"] = 1
    second = torch.cat([b[0] for b in loader])
    assert torch.equal(first, again)
    assert not torch.equal(first, second)
    assert sorted(second.tolist()) == list(range(100))


def test_augmentation_can_be_switched_off(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir), download=False, augment=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    x, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(x, batch[0])


def test_evaluation_shards_cover_every_image_once():
    data = torch.arange(103)
    shards = [torch.cat([b[0] for b in TensorBatches((data,), 10, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(shards).tolist()) == list(range(103))


def test_training_shards_are_equal_and_disjoint():
    data = torch.arange(103)
    kwargs = {"shuffle": True, "seed": 5, "world_size": 2, "equal_shards": True}
    shards = [torch.cat([b[0] for b in TensorBatches((data,), 10, rank=r, **kwargs)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 51
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_the_ranks_step_together_on_the_global_batch_one_process_takes():
    data = torch.arange(103)
    shuffled = {"shuffle": True, "seed": 5, "equal_shards": True}
    one = [b[0] for b in TensorBatches((data[:102],), 20, world_size=1, **shuffled)]
    ranks = [[b[0] for b in TensorBatches((data,), 10, rank=r, world_size=2, **shuffled)] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) == 6, "as many steps as one process at the global batch"
    order = torch.randperm(103, generator=torch.Generator().manual_seed(mix_seed(5, 0)))[:102]
    for step, (a, b) in enumerate(zip(*ranks, strict=True)):
        assert torch.equal(torch.cat([a, b]), order[20 * step : 20 * (step + 1)]), step


def test_a_global_batch_the_processes_cannot_share_is_one_line():
    from advlit.data.tensor_data import check_divisible

    check_divisible(128, 4)
    with pytest.raises(ConfigError, match="data.batch_size=128 is the global batch .* 3 processes"):
        check_divisible(128, 3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"train_limit": 0}, "train_limit=0"),
        ({"erase_max_area": 1.5}, "erase_max_area"),
    ],
)
def test_bad_settings_are_rejected_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MNISTDataModule(**kwargs)


@pytest.mark.slow
def test_real_mnist_has_the_official_sizes(real_mnist):
    x, y = load_mnist(real_mnist, train=True)
    xt, yt = load_mnist(real_mnist, train=False)
    assert x.shape == (60_000, 1, 28, 28) and xt.shape == (10_000, 1, 28, 28)
    assert torch.bincount(yt).tolist()[:2] == [980, 1135]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: bytes(range(256)) * 40, "is corrupt: not a 3-d uint8 IDX file"),
        (lambda b: b[: len(b) // 2], "is corrupt: "),
        (lambda b: b + b"\0" * 10, "is corrupt: "),
    ],
    ids=["random bytes", "truncated", "padded"],
)
def test_a_damaged_mnist_file_is_named_in_one_line(mnist_dir, tmp_path, damage, message):
    import shutil

    from advlit.data import load_mnist
    from advlit.runtime.errors import MissingDataError

    copy = tmp_path / "data"
    shutil.copytree(mnist_dir, copy)
    images = copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(MissingDataError, match=message) as err:
        load_mnist(copy, train=True)
    assert "train-images-idx3-ubyte" in str(err.value) and "\n" not in str(err.value)
    assert load_mnist(copy, train=False)[0].shape == (200, 1, 28, 28), "the other split still loads"


def test_one_missing_mnist_file_is_named(mnist_dir, tmp_path):
    import shutil

    from advlit.data import load_mnist
    from advlit.runtime.errors import MissingDataError

    shutil.copytree(mnist_dir, tmp_path / "data")
    (tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MissingDataError, match="t10k-labels-idx1-ubyte not found"):
        load_mnist(tmp_path / "data", train=False)
