"""advlit's JSMA and C&W beside the reference libraries, on one LeNet5 and one machine.

Not part of the package: ART, torchattacks and advertorch are installed in a scratch
environment (see the README's "Attack speed" section), for example

    pip install --target /tmp/reflibs torchattacks adversarial-robustness-toolbox advertorch scipy scikit-learn
    PYTHONPATH=/tmp/reflibs python benchmarks/reference_attacks.py --data_dir ../shared/data --images 200

Every row attacks the same first test images of the same network (LeNet5 trained 2 epochs);
times are projected to 60,000 images.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from advlit.attacks import build_attack, run_attack
from advlit.attacks.carlini_wagner import EFFICIENT_CW
from advlit.bench.attacks import perturbation_stats, quick_train
from advlit.data import load_mnist
from advlit.runtime.devices import describe_device


def art_attack(cls_name: str, model: torch.nn.Module, batch_size: int, **params):
    from art.attacks import evasion
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), (1, 28, 28), 10, clip_values=(0.0, 1.0))
    attack = getattr(evasion, cls_name)(clf, batch_size=batch_size, verbose=False, **params)
    return lambda x, y: torch.from_numpy(attack.generate(x.numpy())).float()


def torchattacks_attack(cls_name: str, model: torch.nn.Module, **params):
    import torchattacks

    attack = getattr(torchattacks, cls_name)(model, **params)
    return lambda x, y: attack(x, y)


def advertorch_jsma(model: torch.nn.Module, **params):
    import importlib

    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    gradcheck.zero_gradients = lambda x: None  # removed from torch; advertorch still imports it
    from advertorch.attacks import JacobianSaliencyMapAttack

    attack = JacobianSaliencyMapAttack(model, num_classes=10, clip_min=0.0, clip_max=1.0, **params)
    gen = torch.Generator().manual_seed(0)

    def run(x, y):
        target = (y + torch.randint(1, 10, y.shape, generator=gen)) % 10
        return attack.perturb(x, target)

    return run


def jsma_step_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 50) -> float:
    """Milliseconds per image of one forward pass plus the two input gradients a JSMA step needs."""
    x = x.clone().requires_grad_(True)
    for i in range(repeats + 3):
        if i == 3:
            start = time.perf_counter()
        logits = model(x)
        torch.autograd.grad(logits[:, 0].sum(), x, retain_graph=True)
        torch.autograd.grad(logits.sum(), x)
    return 1000 * (time.perf_counter() - start) / repeats / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--slow_images", type=int, default=50, help="images for the slowest peers")
    parser.add_argument("--paper_cw_images", type=int, default=25, help="images for C&W with the paper's settings")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--only", choices=["JSMA", "C&W"], default=None, help="run one attack's rows")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all rows; times are medians")
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    x_train, y_train = load_mnist(args.data_dir, train=True)
    model = quick_train("lenet5", x_train, y_train, epochs=2)
    for p in model.parameters():
        p.requires_grad_(False)
    passes = [0]  # images through the model's forward: the work, whatever the hardware
    model.register_forward_hook(lambda module, inputs, output: passes.__setitem__(0, passes[0] + len(inputs[0])))
    x_all, y_all = load_mnist(args.data_dir, train=False)
    b = args.batch_size

    def ours(name, **params):
        attack = build_attack(name, **params)
        return lambda x, y: run_attack(attack, model, x, y, b, progress=False)

    def batched(fn):
        return lambda x, y: torch.cat([fn(x[i : i + b], y[i : i + b]) for i in range(0, len(x), b)])

    rows = [
        ("JSMA", "advlit pairs (theta 1, gamma 0.2)", args.images, ours("jsma_pairs")),
        ("JSMA", "advlit pairs, chunks of 1000 refilled 100", args.images,
         lambda x, y: run_attack(build_attack("jsma_pairs", working_batch=b), model, x, y, 10 * b, progress=False)),
        ("JSMA", "advlit single", args.images, ours("jsma", variant="single")),
        ("JSMA", "ART SaliencyMapMethod", args.images,
         lambda x, y: art_attack("SaliencyMapMethod", model, b, theta=1.0, gamma=0.2)(x, y)),
        ("JSMA", "torchattacks JSMA", args.slow_images,
         lambda x, y: batched(torchattacks_attack("JSMA", model, theta=1.0, gamma=0.2))(x, y)),
        ("JSMA", "advertorch JSMA", args.slow_images,
         lambda x, y: batched(advertorch_jsma(model, theta=1.0, gamma=0.2))(x, y)),
        ("C&W", "advlit EFFICIENT_CW (profiles)", args.images, ours("cw", **EFFICIENT_CW)),
        ("C&W", "advlit c 2, 1 x 50, lr 0.1, tanh_scale 0.99", args.images,
         ours("cw", c_init=2.0, binary_search_steps=1, max_iterations=50, lr=0.1, tanh_scale=0.99)),
        ("C&W", "advlit the same, no abort early", args.images,
         ours("cw", c_init=2.0, binary_search_steps=1, max_iterations=50, lr=0.1, tanh_scale=0.99, abort_early=False)),
        ("C&W", "advlit c 2, 1 x 150, lr 0.03", args.images,
         ours("cw", c_init=2.0, binary_search_steps=1, max_iterations=150, lr=0.03)),
        ("C&W", "torchattacks CW c 10, 1000 steps", args.slow_images,
         lambda x, y: batched(torchattacks_attack("CW", model, c=10, kappa=5, steps=1000, lr=0.01))(x, y)),
        ("C&W", "ART CarliniL2Method defaults", args.slow_images,
         lambda x, y: art_attack("CarliniL2Method", model, b, confidence=5.0)(x, y)),
        ("C&W", "advlit paper settings (c 1e-3, 9 x 1000)", args.paper_cw_images, ours("cw")),
        ("C&W", "advlit paper settings, tanh_scale 0.99", args.paper_cw_images, ours("cw", tanh_scale=0.99)),
    ]  # fmt: skip
    rows = [row for row in rows if not args.only or row[0] == args.only]
    print(
        f"device: {describe_device(torch.device('cpu'))}; LeNet5 trained 2 epochs, batch {b}; "
        f"{args.repeats} interleaved round(s), times are medians",
        flush=True,
    )
    seconds: dict[str, list[float]] = {name: [] for _, name, _, _ in rows}
    floors, stats = [], {}
    for round_ in range(args.repeats):
        if args.only != "C&W":
            floors.append(jsma_step_ms(model, x_all[:b]))
        for kind, name, n, fn in rows:
            x, y = x_all[:n], y_all[:n]
            try:
                passes[0] = 0
                start = time.perf_counter()
                x_adv = fn(x, y).detach().cpu().float()
                seconds[name].append(time.perf_counter() - start)
            except Exception as err:  # a peer library that does not run here is reported, not fatal
                print(f"{kind:5s} {name:44s} failed: {type(err).__name__}: {err}"[:160], flush=True)
                continue
            if round_ == 0:
                stats[name] = {**perturbation_stats(model, x, x_adv, y), "fwd": passes[0] / n}
            print(f"round {round_ + 1}: {name}: {seconds[name][-1]:.1f} s", flush=True)
    print(f"{'attack':5s} {'implementation':44s} {'images':>6s} {'ms/img':>8s} {'fwd/img':>7s} {'60k (s)':>9s} "
          f"{'success':>8s} {'L0':>6s} {'L2':>5s}")  # fmt: skip
    for kind, name, n, _ in rows:
        if name not in stats:
            continue
        t, s = statistics.median(seconds[name]), stats[name]
        print(
            f"{kind:5s} {name:44s} {n:6d} {1000 * t / n:8.2f} {s['fwd']:7.1f} {t * 60_000 / n:9.0f} "
            f"{s['success']:8.1%} {s['l0']:6.1f} {s['l2']:5.2f}"
        )
    pairs = stats.get("advlit pairs (theta 1, gamma 0.2)")
    if floors and pairs:
        step = statistics.median(floors)
        floor = step * pairs["l0"] / 2 * 60_000 / 1000
        print(
            f"floor: forward + 2 gradients = {step:.3f} ms/img at batch {b} (median of {len(floors)}); "
            f"x {pairs['l0'] / 2:.1f} pair steps = {floor:.0f} s per 60k images on the model passes alone"
        )


if __name__ == "__main__":
    main()
