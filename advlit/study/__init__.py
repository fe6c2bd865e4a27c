"""The black-box study: cached surrogates, adversarial sets and their controls, the training mix
(:class:`MNISTDataModule`) and the per-epoch transfer evaluation."""


def __getattr__(name: str):
    """``MNISTDataModule`` on first use, so that ``import advlit.study.cache`` stays light."""
    if name == "MNISTDataModule":
        from advlit.study.datamodule import MNISTDataModule

        return MNISTDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
