"""``python -m advlit.bench train|attacks``: speed figures (``python -m advlit.bench.fragility`` for noise)."""

from advlit.bench.training import main

if __name__ == "__main__":
    main()
