"""JAX/Flax image restoration: corruptions, models, data, tasks, training and evaluation.

Rooms (a module imports only from rooms above it; none imports launch.py, and no module
imports a mode module (train, eval_mode, restore) except run.py):
  image_ops                                  pad, dihedral transforms, luma, channels
  corruptions, models, metrics, image_files  (image_ops)
  data                                       sources and pipelines (image_files: one decoder)
  losses, optim, parallel, any_size, visualize, run_log
  evaluate                                   EvalOptions, the Evaluator, the eval step
  checkpoints                                the workdir's checkpoints; load_run for eval/restore
  tasks                                      a task per kind of training (registry: config.task)
  train, eval_mode, restore                  the modes
  run                                        what launch.py calls
"""
