"""Speed and fragility tools, printed, never asserted: ``python -m advlit.bench train|attacks|fragility``."""
