"""The training benchmark runs end to end and prints every row (figures are printed, never asserted)."""

import torch


def test_training_benchmark_prints_every_row(capsys):
    from advlit.bench import train

    threads = torch.get_num_threads()
    try:
        train(images=256, batch_size=64, repeats=1, accelerator="cpu", threads=1, eval_batch_sizes=(64, 128))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = ["advlit, NCHW (before)", "advlit, channels_last (default)", "bare loop, channels_last + augmentation"]
    rows += ["score 256, batch 64, NCHW", "score 256, batch 128, channels_last", "Lightning's overhead"]
    for row in rows:
        assert row in out, row
