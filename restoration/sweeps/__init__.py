"""Sweeps: the sweep config's runs (spec) and their aggregated results (report).
`launch.py --mode=sweep` is restoration.modes.sweep."""
