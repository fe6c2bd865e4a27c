"""Small runtime helpers: errors, provenance, progress, quiet logs, threads, devices, checkpoints."""
