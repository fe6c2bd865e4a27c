"""Surrogate networks kept outside the cache (in git), and a cache seeded from them.

A surrogate's cache file (``surrogates/<role>-<arch>-<key>.pt``) holds its weights, its spec and
key, and a digest of its tensors. ``advlit networks add FILE... --to FOLDER`` copies such files
into FOLDER with a manifest (``networks.json``: each file's SHA-256, its weights' digest, spec, key
and training seconds); ``advlit networks seed FOLDER`` checks every file against the manifest and
copies it into the cache, so a new machine makes its adversarial sets on the same networks instead
of training new ones (which come out different on another CPU).
"""

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch

from advlit.models.classifier import build_network
from advlit.runtime.errors import ConfigError
from advlit.runtime.files import atomic_write
from advlit.study.cache import cache_root, made_path, made_seconds, record_made, weights_digest

MANIFEST = "networks.json"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(path: Path) -> dict:
    """The manifest entry of a surrogate cache file; a ConfigError if it is not one."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        spec, key = stored["meta"]["spec"], stored["meta"]["key"]
        net = build_network(spec["arch"])
        net.load_state_dict(stored["tensors"])
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except Exception as err:  # a truncated or foreign file
        raise ConfigError(f"{path} is not a surrogate cache file ({type(err).__name__}: {err})") from None
    if path.name != f"{spec['role']}-{spec['arch']}-{key}.pt":
        raise ConfigError(f"{path.name} is not named after its key ({spec['role']}-{spec['arch']}-{key}.pt)")
    return {"sha256": file_sha256(path), "weights": weights_digest(net), "key": key, "spec": spec,
            "made_s": made_seconds(path), "made_on": stored["meta"].get("made_on")}  # fmt: skip


def read_manifest(folder: Path) -> dict[str, dict]:
    """``networks.json`` of ``folder`` (empty when absent); a ConfigError when unreadable."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} cannot be read ({err})") from None


def add(files: list[Path], folder: Path) -> dict[str, dict]:
    """Copy surrogate cache files into ``folder`` and record them in its manifest."""
    entries = {Path(f).name: describe(Path(f)) for f in files}  # every file checked before any is copied
    manifest = read_manifest(folder)
    for file in files:
        name = Path(file).name
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(file).read_bytes(), folder / name)
        manifest[name] = entries[name]
    atomic_write((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), folder / MANIFEST)
    return manifest


def seed(folder: Path, cache_dir: str | None = None) -> list[str]:
    """Copy every network of ``folder``'s manifest into the cache's ``surrogates/`` folder, each
    checked by its SHA-256 first; one already there with the same bytes is left alone, one with
    other bytes is refused (a different draw of networks under the same key). Returns one line per network."""
    manifest = read_manifest(folder)
    if not manifest:
        raise ConfigError(f"{folder} holds no {MANIFEST}: nothing to seed (advlit networks add ... --to {folder})")
    for name, entry in manifest.items():  # every file checked before the cache is touched
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name} is listed in {MANIFEST} but missing")
        if file_sha256(folder / name) != entry["sha256"]:
            raise ConfigError(f"{folder / name} does not match its SHA-256 in {MANIFEST}: corrupt or replaced")
    target = cache_root(cache_dir) / "surrogates"
    lines = []
    for name, entry in sorted(manifest.items()):
        dest = target / name
        if dest.exists():
            if file_sha256(dest) != entry["sha256"]:
                raise ConfigError(f"the cache already holds another network under {dest}; move it away to seed")
            lines.append(f"{name}: already in the cache")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, dest.with_name(f".{name}.seeding"))  # then renamed: readers see it whole
        dest.with_name(f".{name}.seeding").replace(dest)
        if entry.get("made_s") is not None and not made_path(dest).exists():
            record_made(dest, entry["made_s"])
        lines.append(f"{name}: seeded ({entry['spec']['role']}, augment {entry['spec']['augment']}, "
                     f"seed {entry['spec']['seed']}, weights {entry['weights'][:12]})")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    """``advlit networks add|seed``: keep surrogate networks in a folder, or seed a cache from one."""
    parser = argparse.ArgumentParser(prog="advlit networks", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    p_add = sub.add_parser("add", help="copy surrogate cache files into a folder with a manifest", allow_abbrev=False)
    p_add.add_argument("files", nargs="+", type=Path)
    p_add.add_argument("--to", type=Path, required=True, help="the folder (e.g. results/paper/networks)")
    p_seed = sub.add_parser("seed", help="copy a folder's networks into the cache, checked", allow_abbrev=False)
    p_seed.add_argument("folder", type=Path)
    p_seed.add_argument("--cache_dir", default=None, help="the cache (default: $ADVLIT_CACHE or ~/.cache/advlit)")
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            for name, entry in sorted(add(args.files, args.to).items()):
                print(f"{args.to / name}: {entry['spec']['role']}, sha256 {entry['sha256'][:12]}")
        else:
            target = cache_root(args.cache_dir) / "surrogates"
            for line in seed(args.folder, args.cache_dir):
                print(line)
            print(f"cache: {target}")
    except ConfigError as err:
        print(f"advlit networks: error: {err}", file=sys.stderr)
        sys.exit(2)
