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
