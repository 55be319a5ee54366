r"""The same DnCNN / U-Net train step in PyTorch and JAX, timed interleaved in one run.

  pip install -r benchmarks/requirements-torch.txt      # benchmark-only dependency
  /work/venv/bin/python benchmarks/torch_peer.py [--models=dncnn,unet1024] [--steps=5] \
      [--dtypes=float32] [--compile=true] [--json=PATH]

Settings (as in benchmarks/train_step.py): dncnn = DnCNN-S (17 layers, 64 ch, BN) on 128
gray 40x40 patches; unet1024 = the original U-Net (64..512, bottleneck 1024) on 8 RGB
128x128 patches. PyTorch models mirror `restoration.models` layer for layer (parameter
counts printed and asserted equal). Step on both sides: noise sigma 25/255 on a resident
uint8 batch, forward, MSE, backward, Adam(lr 1e-3). Variants: JAX with the fast CPU conv
('jax fast') and with XLA's own convs ('jax xla', RESTORATION_FAST_CPU_CONV=0), PyTorch
eager and `torch.compile` (a compile failure is reported, not fatal); bfloat16 = the JAX
model's compute dtype and torch autocast. Each round runs one step of every variant
(A/B/C/D, A/B/C/D, ...) so machine load hits all alike; medians of `--steps` rounds after
one warm-up step. Each variant lives in a process of its own (spawned workers, one step per
request: see `_serve` for why), each with the host-memory settings launch.py makes
(`RESTORATION_HOST_MEMORY=system` runs all four without them). Prints a markdown table with
the ratio to the faster PyTorch variant.
"""

import json
import multiprocessing
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import timing  # noqa: E402  pylint: disable=wrong-import-position
import train_step  # noqa: E402  pylint: disable=wrong-import-position

SETTINGS = {"dncnn": (1, 40, 128), "unet1024": (3, 128, 8)}   # channels, patch, batch

# --models, --dtypes, --steps and --json are train_step's flags (imported above); here their
# defaults are dncnn,unet1024 and float32.
flags.DEFINE_bool("compile", True, "also time torch.compile")
FLAGS = flags.FLAGS


class DnCNN(nn.Module):
  """restoration.models.DnCNN: conv+ReLU, 15 x [conv (no bias) + BN + ReLU], conv; x - net."""

  def __init__(self, ch: int, depth: int = 17, f: int = 64):
    super().__init__()
    layers = [nn.Conv2d(ch, f, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):   # flax momentum 0.9 == torch momentum 0.1
      layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f, eps=1e-5,
                                                                           momentum=0.1),
                 nn.ReLU()]
    layers.append(nn.Conv2d(f, ch, 3, padding=1))
    self.net = nn.Sequential(*layers)

  def forward(self, x):
    return x - self.net(x)


def _double(cin, cout):
  return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
  """restoration.models.UNet (bottleneck 1024, no BN): residual, sizes multiple of 16 here."""

  def __init__(self, ch: int, f: int = 64, depth: int = 4, bottleneck: int = 1024):
    super().__init__()
    widths = [f * 2 ** i for i in range(depth)]
    self.enc = nn.ModuleList(_double(a, b) for a, b in zip([ch] + widths[:-1], widths))
    self.mid = _double(widths[-1], bottleneck)
    ups, decs, prev = [], [], bottleneck
    for c in reversed(widths):
      ups.append(nn.ConvTranspose2d(prev, c, 2, stride=2))
      decs.append(_double(2 * c, c))
      prev = c
    self.ups, self.decs = nn.ModuleList(ups), nn.ModuleList(decs)
    self.out = nn.Conv2d(prev, ch, 1)

  def forward(self, x):
    h, skips = x, []
    for enc in self.enc:
      h = enc(h)
      skips.append(h)
      h = nn.functional.max_pool2d(h, 2)
    h = self.mid(h)
    for up, dec, skip in zip(self.ups, self.decs, reversed(skips)):
      h = dec(torch.cat([up(h), skip], dim=1))
    return x + self.out(h)


def torch_variant(name: str, dtype: str, compiled: bool, device: str):
  ch, size, batch = SETTINGS[name]
  torch.manual_seed(0)
  model = (DnCNN(ch) if name == "dncnn" else UNet(ch)).to(device).train()
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  x = torch.from_numpy(np.random.default_rng(0).integers(
      0, 256, (batch, ch, size, size), np.uint8)).to(device)

  def step():
    clean = x.float() / 255.0
    noisy = clean + (25.0 / 255.0) * torch.randn_like(clean)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      y = fwd(noisy)
    loss = torch.mean((y.float() - clean) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  fwd = torch.compile(model) if compiled else model
  params = sum(p.numel() for p in model.parameters())

  def run():
    t0 = time.perf_counter()
    step().item()          # .item() waits for the step, like block_until_ready
    if device == "cuda":
      torch.cuda.synchronize()
    return time.perf_counter() - t0
  return run, params


def jax_variant(name: str, dtype: str, fast: bool):
  ch, size, batch = SETTINGS[name]
  v = train_step.compile_step(name, dtype, batch, fast)
  assert v["x"].shape == (batch, size, size, ch)
  return (lambda: train_step.timed(v, v["x"], 1)), v["params"], v["compile_s"]


_KINDS = ("jax fast", "jax xla", "torch eager", "torch compile")


def _serve(conn, kind: str, name: str, dtype: str, device: str):
  """One variant in a process of its own: build it, then one timed step per "step" message.

  Why its own process: in one process the variants share glibc's heap (and its settings), and
  interleaving them made the JAX fast step page-fault its 2.6 GiB scratch back in every round
  (680k faults, ~9 s of system time per DnCNN step, where it has none alone: WORKSPACE,
  issue 17, session 6). As users run them, each framework has its process to itself."""
  train_step.host_memory.configure()    # as launch.py does (and for torch: equal terms)
  try:
    if kind.startswith("jax"):
      run, params, compile_s = jax_variant(name, dtype, kind == "jax fast")
      note = f"compile {compile_s:.1f} s"
    else:
      run, params = torch_variant(name, dtype, kind == "torch compile", device)
      t0 = time.perf_counter()
      run()                                   # first call compiles
      note = f"first step {time.perf_counter() - t0:.1f} s"
  except Exception as e:  # pylint: disable=broad-except
    conn.send((None, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"))
    return
  conn.send((params, note))
  while conn.recv() == "step":
    conn.send(run())


def bench(name: str, dtype: str, device: str):
  kinds = [k for k in _KINDS if FLAGS.compile or k != "torch compile"]
  ctx = multiprocessing.get_context("spawn")
  workers, variants, notes, params = {}, {}, {}, {}
  try:
    for kind in kinds:                  # started one after another: compiles do not overlap
      parent, child = ctx.Pipe()
      proc = ctx.Process(target=_serve, args=(child, kind, name, dtype, device), daemon=True)
      proc.start()
      workers[kind] = (proc, parent)
      params[kind], notes[kind] = parent.recv()
      if params[kind] is None:
        print(f"{kind} {notes[kind]}", flush=True)
        continue
      variants[kind] = lambda c=parent: (c.send("step"), c.recv())[1]
    jax_params, torch_params = params["jax fast"], params["torch eager"]
    print(f"{name}: params jax {jax_params:,} torch {torch_params:,}", flush=True)
    assert jax_params == torch_params, (name, torch_params, jax_params)
    times = timing.interleaved(variants, FLAGS.steps)   # a warm-up round, then timed rounds
  finally:
    for proc, conn in workers.values():
      if proc.is_alive():
        try:
          conn.send("stop")
        except OSError:
          pass
      proc.join(timeout=30)
      if proc.is_alive():
        proc.kill()
  med = {k: float(np.median(v)) for k, v in times.items()}
  best_torch = min((v for k, v in med.items() if k.startswith("torch")), default=float("nan"))
  return [dict(model=name, dtype=dtype, batch=SETTINGS[name][2], variant=k, step_s=t,
               times=times[k], vs_best_torch=t / best_torch, note=notes.get(k, ""),
               params=jax_params) for k, t in med.items()] + [
                   dict(model=name, dtype=dtype, variant=k, note=n, step_s=None)
                   for k, n in notes.items() if k not in med]


def main(argv):
  del argv
  retained = train_step.host_memory.available() and train_step.host_memory.mode() == "retain"
  device = "cuda" if torch.cuda.is_available() else "cpu"
  load0 = os.getloadavg()
  models = FLAGS.models if FLAGS["models"].present else list(SETTINGS)
  dtypes = FLAGS.dtypes if FLAGS["dtypes"].present else ["float32"]
  bad = [m for m in models if m not in SETTINGS] + [
      d for d in dtypes if d not in ("float32", "bfloat16")]
  if bad:
    raise ValueError(f"--models/--dtypes: unknown {bad}; allowed: {', '.join(SETTINGS)} / "
                     "float32, bfloat16")
  rows = []
  for dtype in dtypes:
    for name in models:
      new = bench(name, dtype, device)
      for r in new:                      # as they come: a run cut short keeps what it measured
        print(json.dumps({k: v for k, v in r.items() if k != "times"}), flush=True)
      rows += new
  print("\n| model | dtype | batch | variant | step ms | / best torch | note |")
  print("|---|---|---:|---|---:|---:|---|")
  for r in rows:
    if r["step_s"] is None:
      print(f"| {r['model']} | {r['dtype']} | | {r['variant']} | | | {r['note']} |")
    else:
      print(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['variant']} | "
            f"{timing.ms_text(r['step_s'])} | {r['vs_best_torch']:.2f} | {r['note']} |")
  print(f"\ntorch {torch.__version__} ({device}, {torch.get_num_threads()} threads), jax "
        f"{train_step.jax.__version__}; load average before {load0[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}; host memory {train_step.host_memory.mode()} (applied: "
        f"{retained})")
  if FLAGS.json:
    with open(FLAGS.json, "w") as fh:
      json.dump({"rows": rows, "load_before": load0, "load_after": os.getloadavg(),
                 "host_memory": train_step.host_memory.mode(),
                 "host_memory_applied": retained}, fh, indent=1)


if __name__ == "__main__":
  app.run(main)
