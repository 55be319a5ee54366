"""What a run needs around the model: checkpoints, a trained run read back, the run log, the
workdir lock, preemption, progress, host memory and the device/process layout (parallel)."""
