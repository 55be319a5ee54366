"""Sweep configs: a base run config, named variants and seeds (see restoration/sweeps/spec.py)."""
