r"""Does this machine and this code train the same surrogate as a cached one?

Trains one quick-profile LeNet5 surrogate into an empty scratch cache and prints the SHA-256 of
its weights beside the digest of the matching file in ``--compare_cache`` (same key). Run it
under two commits, or on two machines, to tell code changes from machine differences
(docs/results.md, "Seeds and machines"):

    PYTHONPATH=. python benchmarks/surrogate_digest.py --data_dir ../shared/data --seed 2002 \
        --compare_cache $ADVLIT_CACHE

Defaults: seed 2's attacker A' with the quick profile's images, epochs and learning rate
(read from configs/profiles/quick.yaml).
"""

import argparse
import tempfile
from pathlib import Path

import torch
import yaml

from advlit.study import surrogate
from advlit.study.cache import weights_digest
from advlit.study.datamodule import MNISTDataModule

QUICK = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs" / "profiles" / "quick.yaml").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--seed", type=int, default=2002)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--role", default="attacker", choices=["attacker", "defender"])
    parser.add_argument("--train_limit", type=int, default=QUICK["data"]["train_limit"])
    parser.add_argument("--epochs", type=int, default=QUICK["transfer"]["attacker_epochs"])
    parser.add_argument("--lr", type=float, default=QUICK["model"]["lr"])
    parser.add_argument("--compare_cache", default=None, help="a cache folder holding the same surrogate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = MNISTDataModule(args.data_dir, download=False, train_limit=args.train_limit, progress=False)
    data.load_data()
    spec = surrogate.SurrogateSpec(
        arch="lenet5", augment=args.augment, seed=args.seed, epochs=args.epochs, role=args.role, lr=args.lr
    )
    with tempfile.TemporaryDirectory() as scratch:
        made = surrogate.load_or_train(spec, data.train_x, data.train_y, data.augmenter, data.train_digest, scratch)
    print(f"trained here: key {made.key}, weights {made.weights}")
    if args.compare_cache:
        _, path = surrogate.surrogate_path(spec, data.augmenter, data.train_digest, args.compare_cache)
        if Path(path).exists():
            print(f"cached:       key {made.key}, weights {weights_digest(surrogate.cached_network(path))}")
        else:
            print(f"cached:       no file {path}")


if __name__ == "__main__":
    main()
