"""Sweep configs: a base run config, named variants and seeds (see restoration/sweep_spec.py)."""
