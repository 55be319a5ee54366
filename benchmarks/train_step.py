r"""Train-step speed of the model zoo: steps/s, images/s, compile time, FLOP/s, MFU, memory.

  /work/venv/bin/python benchmarks/train_step.py --models=dncnn --dtypes=float32 \
      [--batches=128] [--fast=on,off] [--steps=5] [--pipeline] [--json=PATH]

The step is the trainer's restoration step: Gaussian noise (sigma 25/255, key folded from the
step number) on a uint8 batch, forward, MSE loss, grad, optax.adam update, BatchNorm stats
updated. For each model x compute dtype x batch x fast-path setting ('on':
`restoration.models.conv` as the trainer runs it, RESTORATION_FAST_CPU_CONV=auto: im2col
weight gradients, the mosaic of narrow images where its rule says so; 'off':
RESTORATION_FAST_CPU_CONV=0, XLA's own), all variants are compiled first and then timed
interleaved (round r times every variant once, A/B/A/B) so that load from other processes hits them alike; each time is one
step ended by `block_until_ready`, and the table gives medians. Columns:
  compile   seconds to lower + compile the step
  GFLOP     XLA cost analysis of the lowered step ('flops', multiply-add = 2): what the model
            asks for, the same on every backend (the compiled count misses cuDNN convs)
  MFU       achieved FLOP/s / peak; the peak is --peak_tflops, else the table PEAK_TFLOPS
            for --accelerator (default: 'cpu' on the CPU backend, measured below)
  temp MiB  `memory_analysis().temp_size_in_bytes` of the compiled step (peak scratch)
  pipe/res  with --pipeline: step time when each batch comes from the real input pipeline
            (`restoration.data.make_train_data`, 0 workers) over the time with a resident
            batch; ~1 means the input is not the bottleneck.

'cpu' peak: the median FLOP/s of a jitted 2048^3 GEMM in the run's dtype, measured at start.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))

import jax  # noqa: E402  pylint: disable=wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import optax  # noqa: E402  pylint: disable=wrong-import-position

from restoration.runtime import host_memory  # noqa: E402  pylint: disable=wrong-import-position
from restoration.models import get_model  # noqa: E402  pylint: disable=wrong-import-position
import timing  # noqa: E402  pylint: disable=wrong-import-position  (this folder's)

_DATA = os.path.normpath(os.path.join(_HERE, "..", "..", "shared", "data", "denoise", "train"))

# Dense (no sparsity) peak TFLOP/s per chip: bfloat16 tensor-core / MXU, and float32 without
# TF32 (GPU CUDA cores). TPUs run float32 matmuls as bf16 passes: the bf16 peak is used.
PEAK_TFLOPS = {
    "h100-sxm": {"bfloat16": 989.0, "float32": 67.0},
    # H200 SXM: the H100's arithmetic. float32 here is TF32 tensor-core math (dense 495), the
    # default for float32 convolutions of both XLA and cuDNN/PyTorch on this chip.
    "h200": {"bfloat16": 989.0, "float32": 495.0},
    "a100": {"bfloat16": 312.0, "float32": 19.5},
    "tpu-v4": {"bfloat16": 275.0, "float32": 275.0},
    "tpu-v5e": {"bfloat16": 197.0, "float32": 197.0},
    "cpu": None,   # measured GEMM peak of this machine (see module docstring)
}

# model -> (channels, patch size, default batches, training folder)
SETTINGS = {
    "cnn": (3, 64, (16,), "CBSD432"),
    "dncnn": (1, 40, (128,), "Train400"),
    "unet512": (3, 128, (8,), "CBSD432"),
    "unet1024": (3, 128, (8,), "CBSD432"),
    "cvt": (3, 64, (8,), "CBSD432"),
}

flags.DEFINE_list("models", list(SETTINGS), f"models to time, from {', '.join(SETTINGS)}")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "compute dtypes")
flags.DEFINE_list("batches", [], "batch sizes (default: each model's own, see SETTINGS)")
flags.DEFINE_list("fast", ["on", "off"], "fast CPU conv settings to compare: on, off")
flags.DEFINE_integer("steps", 5, "timed steps per variant (interleaved rounds)")
flags.DEFINE_bool("pipeline", False, "also time steps fed by the real input pipeline")
flags.DEFINE_string("accelerator", None, f"peak table row: {', '.join(PEAK_TFLOPS)}")
flags.DEFINE_float("peak_tflops", None, "peak TFLOP/s for MFU (overrides --accelerator)")
flags.DEFINE_string("json", None, "also write the rows as JSON here")
FLAGS = flags.FLAGS


def fast_env(on: bool):
  """Sets the switch read by restoration.models.conv at trace time."""
  os.environ["RESTORATION_FAST_CPU_CONV"] = "auto" if on else "0"


def make_step(model, lr: float = 1e-3):
  """(state, batch uint8 NHWC, step) -> (state, loss): noise, MSE, grad, adam."""
  tx = optax.adam(lr)

  def step(state, batch, i):
    params, stats, opt = state
    clean = batch.astype(jnp.float32) / 255.0
    noise = jax.random.normal(jax.random.fold_in(jax.random.key(0), i), clean.shape)
    noisy = clean + (25.0 / 255.0) * noise

    def loss_fn(p):
      y, new = model.apply({"params": p, "batch_stats": stats}, noisy, train=True,
                           mutable=["batch_stats"])
      return jnp.mean((y.astype(jnp.float32) - clean) ** 2), new.get("batch_stats", {})

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), stats, opt), loss

  def init(batch):
    v = model.init(jax.random.key(0), batch.astype(jnp.float32), train=False)
    return (v["params"], v.get("batch_stats", {}), tx.init(v["params"]))

  return step, init


def compile_step(name: str, dtype: str, batch: int, fast: bool):
  """Compiled step + its initial state, resident batch and compile statistics."""
  ch, size, _, _ = SETTINGS[name]
  fast_env(fast)
  model = get_model(name, dtype=dtype)
  step, init = make_step(model)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, size, size, ch), np.uint8))
  state = jax.jit(init)(x)
  t0 = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=0).lower(state, x, 0)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  # The FLOPs the step's HLO asks for, before backend passes: on GPUs the compiled module's
  # convolutions are cuDNN custom calls that XLA's cost analysis counts as 0 FLOPs (an H200
  # DnCNN step read 4.2 GFLOP compiled, 662 lowered), so MFU comes from the lowered count.
  cost = lowered.cost_analysis()
  cost = (cost[0] if cost else {}) if isinstance(cost, (list, tuple)) else cost
  mem = compiled.memory_analysis()
  params = sum(p.size for p in jax.tree.leaves(state[0]))
  return dict(fn=compiled, state=state, x=x, compile_s=compile_s, params=params,
              flops=float(cost.get("flops", float("nan"))),
              temp_mib=getattr(mem, "temp_size_in_bytes", float("nan")) / 2 ** 20)


def timed(v, batch, i):
  t0 = time.perf_counter()
  v["state"], loss = v["fn"](v["state"], batch, i)
  loss.block_until_ready()
  return time.perf_counter() - t0


def pipeline(name: str, batch: int):
  from configs import default  # pylint: disable=import-outside-toplevel
  from restoration import data  # pylint: disable=import-outside-toplevel
  ch, size, _, folder = SETTINGS[name]
  c = default.get_config()
  c.batch_size, c.patch_size = batch, size
  c.data.channels = ch
  c.data.train = "folder:" + os.path.join(_DATA, folder)
  c.data.augment = True
  c.data.num_workers = 0
  return data.make_train_data(c, local_device_count=1)


def gemm_peak(dtype: str, n: int = 2048, reps: int = 5) -> float:
  ms = timing.median_ms(jax.jit(lambda a: a @ a), jnp.ones((n, n), dtype), n=reps)
  return 2 * n ** 3 / (ms / 1e3) / 1e12


def peak_tflops(dtype: str) -> float:
  if FLAGS.peak_tflops:
    return FLAGS.peak_tflops
  acc = FLAGS.accelerator or ("cpu" if jax.default_backend() == "cpu" else None)
  if acc is None:
    return float("nan")
  if acc not in PEAK_TFLOPS:
    raise ValueError(f"--accelerator={acc!r}; allowed: {', '.join(PEAK_TFLOPS)}")
  row = PEAK_TFLOPS[acc]
  return gemm_peak(dtype) if row is None else row[dtype]


def bench(name: str, dtype: str, batch: int, fasts, steps: int, with_pipeline: bool):
  """Rows for one model/dtype/batch: the fast settings compiled, then timed interleaved."""
  variants = {f: compile_step(name, dtype, batch, f == "on") for f in fasts}
  it = pipeline(name, batch) if with_pipeline else None
  res = {f: [] for f in fasts}
  pipe = {f: [] for f in fasts}
  for f in fasts:                          # one untimed step each (first-run allocations)
    timed(variants[f], variants[f]["x"], 0)
  for r in range(1, steps + 1):
    for f in fasts:
      v = variants[f]
      res[f].append(timed(v, v["x"], r))
      if it is not None:
        t0 = time.perf_counter()
        b = jnp.asarray(next(it).reshape(v["x"].shape))
        pipe[f].append(timed(v, b, r) + time.perf_counter() - t0)
  if it is not None:
    it.close()
  rows = []
  for f in fasts:
    v, t = variants[f], float(np.median(res[f]))
    rows.append(dict(model=name, dtype=dtype, batch=batch, fast_cpu_conv=f, params=v["params"],
                     step_s=t, steps_per_s=1 / t, images_per_s=batch / t,
                     compile_s=v["compile_s"], gflop=v["flops"] / 1e9,
                     tflops=v["flops"] / t / 1e12, temp_mib=v["temp_mib"],
                     pipeline_over_resident=(float(np.median(pipe[f])) / t
                                             if pipe[f] else None)))
  return rows


def markdown(rows) -> str:
  out = ["| model | dtype | batch | fast conv | step ms | steps/s | images/s | compile s | "
         "GFLOP | TFLOP/s | MFU % | temp MiB | pipe/res |",
         "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    pr = r["pipeline_over_resident"]
    out.append(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['fast_cpu_conv']} | "
               f"{timing.ms_text(r['step_s'])} | {r['steps_per_s']:.2f} | {r['images_per_s']:.1f} | "
               f"{r['compile_s']:.1f} | {r['gflop']:.1f} | {r['tflops']:.3f} | "
               f"{100 * r['mfu']:.1f} | {r['temp_mib']:.0f} | "
               f"{'' if pr is None else f'{pr:.2f}'} |")
  return "\n".join(out)


def main(argv):
  del argv
  retained = host_memory.configure()   # as launch.py does, before the backend starts
  bad = [m for m in FLAGS.models if m not in SETTINGS]
  bad += [d for d in FLAGS.dtypes if d not in ("float32", "bfloat16")]
  bad += [f for f in FLAGS.fast if f not in ("on", "off")]
  if bad:
    raise ValueError(f"unknown --models/--dtypes/--fast value(s) {bad}; allowed: "
                     f"{', '.join(SETTINGS)} / float32, bfloat16 / on, off")
  load0 = os.getloadavg()
  rows = []
  for dtype in FLAGS.dtypes:
    peak = peak_tflops(dtype)
    for name in FLAGS.models:
      for batch in map(int, FLAGS.batches or SETTINGS[name][2]):
        for r in bench(name, dtype, batch, FLAGS.fast, FLAGS.steps, FLAGS.pipeline):
          r.update(peak_tflops=peak, mfu=r["tflops"] / peak)
          rows.append(r)
          print(json.dumps(r), flush=True)
  print()
  print(markdown(rows))
  print(f"\njax {jax.__version__}, backend {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), {os.cpu_count()} CPUs; load average before "
        f"{load0[0]:.2f}, after {os.getloadavg()[0]:.2f}; host memory {host_memory.mode()} "
        f"(applied: {retained})")
  if FLAGS.json:
    with open(FLAGS.json, "w") as fh:
      json.dump({"rows": rows, "load_before": load0, "load_after": os.getloadavg(),
                 "jax": jax.__version__, "backend": jax.default_backend(),
                 "host_memory": host_memory.mode(), "host_memory_applied": retained}, fh,
                indent=1)


if __name__ == "__main__":
  app.run(main)
