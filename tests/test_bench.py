"""The training benchmark runs end to end and prints every row (figures are printed, never asserted)."""

import torch


def test_training_benchmark_prints_every_row(capsys):
    from advlit.bench.training import train

    threads = torch.get_num_threads()
    try:
        train(images=256, batch_size=64, repeats=1, accelerator="cpu", threads=1, eval_batch_sizes=(64, 128))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = ["advlit, before (NCHW, ReLU then pool)", "advlit, now (channels_last, pool then ReLU)"]
    rows += ["bare loop, now + augmentation", "score 256, batch 64, before", "score 256, batch 128, now"]
    rows += ["Lightning's overhead"]
    for row in rows:
        assert row in out, row


def test_the_before_rows_run_the_earlier_layer_order():
    from advlit.bench.training import relu_before_pool
    from advlit.models import build_network

    net = relu_before_pool(build_network("lenet5", channels_last=False))
    assert [type(m).__name__ for m in net.features] == ["Conv2d", "ReLU", "MaxPool2d"] * 2
