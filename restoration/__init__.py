"""JAX/Flax image restoration: corruptions, models, data, training and evaluation.

Layers (a module imports only from layers below it; none imports from launch.py):
  corruptions, models, metrics, imageio                (nothing of ours)
  data                                                  (imageio's IMAGE_EXTENSIONS)
  losses, optim, parallel, inference, visualize, logging, checkpoints
  state                                                 (models, parallel)
  evaluate                                              (corruptions, data, metrics, inference, ...)
  train, eval_mode, restore                             (the modes; restore reuses
                                                        eval_mode's checkpoint loading)
  run                                                   (what launch.py calls)
"""
