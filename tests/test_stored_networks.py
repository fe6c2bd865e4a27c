"""Surrogate networks kept in a folder with a manifest, and a cache seeded from them, checked."""

import json

import pytest
import torch
from conftest import run_cli

from advlit.models.classifier import build_network
from advlit.runtime.errors import ConfigError
from advlit.study import stored_networks
from advlit.study.cache import made_seconds, record_made, save_tensors, weights_digest
from advlit.study.surrogate import SurrogateSpec, cached_network


def cache_file(folder, seed: int, key: str):
    """A surrogate cache entry as load_or_train writes it (a random LeNet5)."""
    torch.manual_seed(seed)
    net = build_network("lenet5")
    spec = SurrogateSpec("lenet5", True, seed, 50, "attacker")
    path = folder / "surrogates" / f"attacker-lenet5-{key}.pt"
    save_tensors(net.state_dict(), {"key": key, "spec": spec.__dict__}, path)
    record_made(path, 1234.5)
    return path, weights_digest(net)


def test_networks_kept_in_a_folder_seed_an_empty_cache_bit_for_bit(tmp_path):
    a, a_weights = cache_file(tmp_path / "old", 2, "aaaa")
    b, _ = cache_file(tmp_path / "old", 3, "bbbb")
    kept = tmp_path / "kept"
    manifest = stored_networks.add([a, b], kept)
    assert manifest[a.name]["weights"] == a_weights and manifest[a.name]["spec"]["seed"] == 2
    assert json.loads((kept / "networks.json").read_text()) == manifest
    lines = stored_networks.seed(kept, str(tmp_path / "new"))
    assert all("seeded" in line for line in lines) and len(lines) == 2
    copy = tmp_path / "new" / "surrogates" / a.name
    assert copy.read_bytes() == a.read_bytes() and made_seconds(copy) == 1234.5
    assert weights_digest(cached_network(copy)) == a_weights
    assert all("already in the cache" in line for line in stored_networks.seed(kept, str(tmp_path / "new")))


def test_a_corrupt_or_conflicting_network_is_refused_before_the_cache_is_touched(tmp_path):
    a, _ = cache_file(tmp_path / "old", 2, "aaaa")
    b, _ = cache_file(tmp_path / "old", 3, "bbbb")
    kept = tmp_path / "kept"
    stored_networks.add([a, b], kept)
    (kept / b.name).write_bytes((kept / b.name).read_bytes()[:-10])
    with pytest.raises(ConfigError, match="does not match its SHA-256"):
        stored_networks.seed(kept, str(tmp_path / "new"))
    assert not (tmp_path / "new").exists(), "nothing seeded while one file is bad"
    stored_networks.add([b], kept)  # mended
    other, _ = cache_file(tmp_path / "other", 9, "aaaa")  # another network under a's name
    (tmp_path / "new" / "surrogates").mkdir(parents=True)
    (tmp_path / "new" / "surrogates" / a.name).write_bytes(other.read_bytes())
    with pytest.raises(ConfigError, match="another network"):
        stored_networks.seed(kept, str(tmp_path / "new"))
    with pytest.raises(ConfigError, match="not a surrogate cache file"):
        stored_networks.add([kept / "networks.json"], kept)


def test_networks_command_is_one_line_on_a_bad_folder(tmp_path, capsys):
    assert run_cli("networks", "seed", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds no networks.json" in err


def load_benchmark(name: str):
    """A script of benchmarks/ as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerate_sets_reads_the_sets_the_runs_cached_on_the_kept_networks(tmp_path, mnist_dir):
    from advlit.attacks import build_attack, run_attack
    from advlit.data import load_mnist
    from advlit.study import adversarial_sets
    from advlit.study.cache import tensor_digest

    regen = load_benchmark("regenerate_sets")
    a, a_weights = cache_file(tmp_path / "old", 2, "aaaa")
    kept = tmp_path / "kept"
    stored_networks.add([a], kept)
    net = cached_network(kept / a.name)
    x, y = load_mnist(mnist_dir, train=False)
    cache = str(tmp_path / "cache")
    fgsm = build_attack("fgsm", **regen.PAPER_ATTACKS["fgsm"])
    adversarial_sets.load_or_make(
        net, "aaaa", "fgsm", fgsm, "test", x, y, tensor_digest(x, y), cache, None, False, a_weights
    )
    found = regen.from_cache(kept, str(mnist_dir), 4, cache)
    assert list(found) == [f"{a.name}/fgsm"], "only the set in the cache; JSMA and C&W were never made"
    expected = regen.image_hashes(run_attack(fgsm, net, x[:4], y[:4], batch_size=100, progress=False))
    assert found[f"{a.name}/fgsm"] == expected
    (path,) = (tmp_path / "cache" / "adversarial").glob("test-fgsm-*.pt")
    stored = torch.load(path, weights_only=True)
    whole = stored["tensors"]["x_adv"].clone()
    stored["tensors"]["x_adv"][0] += 0.5  # a changed image under the old digest
    torch.save(stored, path)
    assert regen.from_cache(kept, str(mnist_dir), 4, cache) == {}, "a set failing its digest is left out"
    stored["tensors"]["x_adv"] = whole
    del stored["meta"][adversarial_sets.WEIGHTS]  # whole, but from before sets recorded their weights
    torch.save(stored, path)
    adversarial_sets.load_or_make(net, "aaaa", "fgsm", fgsm, "test", x, y, tensor_digest(x, y), cache, None, False,
                                  a_weights)  # fmt: skip
    kept_file = torch.load(path, weights_only=True)["meta"]
    assert adversarial_sets.WEIGHTS not in kept_file, "the runs take it as it is (an added key) ..."
    assert regen.from_cache(kept, str(mnist_dir), 4, cache) == {}, "... the check here does not"
    other = cache_file(tmp_path / "other", 9, "bbbb")[0]  # a set made on other weights under the same key
    adversarial_sets.load_or_make(cached_network(other), "aaaa", "fgsm", fgsm, "test", x, y, tensor_digest(x, y),
                                  str(tmp_path / "cache2"), None, False)  # fmt: skip
    assert regen.from_cache(kept, str(mnist_dir), 4, str(tmp_path / "cache2")) == {}
