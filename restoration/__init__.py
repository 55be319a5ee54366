"""JAX/Flax image restoration: corruptions, models, data, tasks, training and evaluation.

Rooms (a package or module imports only from rooms above it; no import cycles, none imports
launch.py, and no module imports a mode except the modes package's dispatch, modes.main):
  image_ops, config_fields, optim            pad, dihedral transforms, luma, channels; ...
  runtime                                    checkpoints, trained_run, run_log, workdir_lock,
                                             preemption, progress, host_memory, parallel
  corruptions, models, image_files, any_size, cli   (image_ops; cli: config_fields)
  weights                                    readers of published weights (models)
  data                                       sources and pipelines (image_files: one decoder)
  losses                                     pixel, GAN and VGG perceptual losses (weights)
  eval                                       the Evaluator, metrics, results, compare, visualize
  tasks                                      a task per kind of training (registry: config.task)
  sweeps                                     sweep specs and their aggregated report
  modes                                      what launch.py --mode=... runs (train, evaluate,
                                             restore, sweep, import_weights, chained[_eval])
"""
