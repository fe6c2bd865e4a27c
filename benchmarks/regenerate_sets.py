"""How close are adversarial sets regenerated from the committed networks to the originals?

For each attacker network in a kept folder (``advlit networks add``; default results/paper/networks)
it makes the paper profile's attacks (FGSM, JSMA, C&W in the efficient setting) on the first N
MNIST test images and hashes each image. ``--record FILE`` writes the per-image hashes with the
machine they were made on; ``--compare FILE`` makes them again here and prints, per attacker and
attack, the share of images that differ from the record (0: bit for bit the same sets). Printed,
never asserted. ``--compare FILE --cache DIR`` makes nothing: it hashes the first images of the
test sets that ``advlit fit`` already made in the cache DIR on the kept networks (found by their cache
keys, as the runs find them), so a machine that ran the tables checks its sets at no cost.

    python benchmarks/regenerate_sets.py --data_dir ../shared/data --record results/paper/networks/set_hashes.json
    python benchmarks/regenerate_sets.py --data_dir ../shared/data --compare results/paper/networks/set_hashes.json
    python benchmarks/regenerate_sets.py --data_dir ../shared/data --compare results/paper/networks/set_hashes.json \
        --cache "$ADVLIT_CACHE"
"""

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import torch

from advlit.attacks import build_attack, run_attack
from advlit.data import load_mnist
from advlit.runtime.provenance import machine
from advlit.study.adversarial_sets import set_meta, set_path
from advlit.study.cache import cache_root, load_tensors, tensor_digest
from advlit.study.stored_networks import read_manifest
from advlit.study.surrogate import cached_network

PAPER_ATTACKS = {
    "fgsm": {},
    "jsma": {},
    "cw": {
        "c_init": 2.0,
        "binary_search_steps": 3,
        "max_iterations": 100,
        "lr": 0.1,
        "tanh_scale": 0.999,
        "snap": 0.002,
    },
}


def image_hashes(x: torch.Tensor) -> list[str]:
    """A short SHA-256 per image of its float32 bytes."""
    return [hashlib.sha256(img.contiguous().numpy().tobytes()).hexdigest()[:16] for img in x.float().cpu()]


def make(folder: Path, data_dir: str, images: int) -> dict[str, list[str]]:
    x, y = load_mnist(data_dir, train=False)
    x, y = x[:images], y[:images]
    out = {}
    for name, entry in sorted(read_manifest(folder).items()):
        if entry["spec"]["role"] != "attacker":
            continue
        net = cached_network(folder / name)
        for attack, params in PAPER_ATTACKS.items():
            start = time.perf_counter()
            x_adv = run_attack(build_attack(attack, **params), net, x, y, batch_size=100, progress=False)
            out[f"{name}/{attack}"] = image_hashes(x_adv)
            print(f"{name} {attack}: {images} images in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def from_cache(folder: Path, data_dir: str, images: int, cache_dir: str) -> dict[str, list[str]]:
    """The hashes of the first ``images`` images of the cached test sets made on ``folder``'s attackers
    from the whole test split, as the paper profile makes them. A set is read as the runs read it (its
    path and metadata from :mod:`advlit.study.adversarial_sets`, checked by ``load_tensors``), but
    strictly: a set recording no weights digest is left out too, as is one not in the cache, made
    on other weights or settings, or failing its stored digest, each with a line."""
    x, y = load_mnist(data_dir, train=False)
    digest = tensor_digest(x, y)
    out = {}
    for name, entry in sorted(read_manifest(folder).items()):
        if entry["spec"]["role"] != "attacker":
            continue
        for attack, params in PAPER_ATTACKS.items():
            built = build_attack(attack, **params)
            key, path = set_path(entry["key"], attack, built, "test", digest, cache_dir)
            if not path.is_file():
                print(f"{name} {attack}: not in the cache ({path.name})", flush=True)
                continue
            with warnings.catch_warnings():  # its "regenerating" warning: this script makes nothing
                warnings.simplefilter("ignore")
                stored = load_tensors(path, set_meta(key, attack, built, "test", x, entry["weights"]))
            if stored is None:
                print(f"{name} {attack}: the cached set was made on other weights or settings, or fails its "
                      "stored digest; left out", flush=True)  # fmt: skip
                continue
            out[f"{name}/{attack}"] = image_hashes(stored["x_adv"][:images])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("--networks", type=Path, default=Path("results/paper/networks"))
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--images", type=int, default=500)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path)
    group.add_argument("--compare", type=Path)
    parser.add_argument("--cache", help="with --compare: hash the sets already in this cache (empty: advlit's "
                        "default cache), make nothing")  # fmt: skip
    args = parser.parse_args()
    if args.cache is not None and not args.compare:
        parser.error("--cache goes with --compare")
    torch.set_num_threads(1)
    if args.compare:
        recorded = json.loads(args.compare.read_text())
        images = len(next(iter(recorded["hashes"].values())))
        if args.cache is not None:
            now = from_cache(args.networks, args.data_dir, images, str(cache_root(args.cache or None)))
        else:
            now = make(args.networks, args.data_dir, images)
        print(f"recorded on {recorded['machine']}; here {machine()}")
        for key, hashes in sorted(recorded["hashes"].items()):
            if key not in now:
                print(f"{key}: not compared")
                continue
            differ = sum(a != b for a, b in zip(hashes, now[key], strict=True))
            print(f"{key}: {differ}/{len(hashes)} images differ ({100 * differ / len(hashes):.1f}%)")
        return
    hashes = make(args.networks, args.data_dir, args.images)
    args.record.write_text(json.dumps({"machine": machine(), "images": args.images, "hashes": hashes}) + "\n")
    print(f"recorded {len(hashes)} sets to {args.record}")


if __name__ == "__main__":
    main()
