"""JAX/Flax image restoration: corruptions, models, data, training and evaluation.

Layering (lower never imports higher): corruptions, models, data, metrics, losses
-> parallel, checkpoints, logging, visualize -> train, evaluate -> launch.py.
"""
