#!/bin/bash
# The GPU checks of issue 24 as one call on a lent machine (WORKSPACE "Trained on a GPU"):
#   versions    the device and the library versions;
#   train_step  benchmarks/train_step.py: DnCNN-S (128 x 40^2) and U-Net 1024 (8 x 128^2) train
#               steps, float32 (TF32) and bfloat16: ms/step, TFLOP/s, MFU;
#   ttq         benchmarks/time_to_quality.py: DnCNN-S sigma 25 trained from scratch on Train400
#               for MINUTES (`configs/dncnn.py:gpu=MINUTES`, its cosine fitted to the step time
#               train_step measured), every kept checkpoint then scored on BSD68 with the paper's
#               protocol;
#   torch_peer  benchmarks/torch_peer.py: the same steps in PyTorch eager / torch.compile and JAX.
# Each phase has its own time limit, so one that overruns costs only itself; logs and JSON go
# to OUT as they are made (a call cut short keeps what was measured).
#
#   PHASES=versions,train_step,ttq bash benchmarks/gpu_check.sh OUT DATA [MINUTES]
# DATA holds Train400/ and BSD68/ (the device machine cannot see ../shared/data: copy them
# into an ignored folder of the checkout and carry it). Run from the repository root.
set -u -o pipefail
OUT=${1:?OUT}; DATA=${2:?DATA}; MINUTES=${3:-3}
PHASES=${PHASES:-versions,train_step,ttq,torch_peer}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
T0=$(date +%s)
phase() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; [[ ",$PHASES," == *",$1,"* ]]; }

if phase versions; then
  (nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
   $PY -c "import sys, jax, jaxlib, flax, optax, orbax.checkpoint as ocp, grain, numpy
print(sys.version.split()[0], 'jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax',
      flax.__version__, 'optax', optax.__version__, 'orbax', ocp.__version__, 'grain',
      getattr(grain, '__version__', '?'), 'numpy', numpy.__version__)
print(jax.devices())") 2>&1 | tee "$OUT/versions.txt"
fi

if phase train_step; then
  ACC=$($PY -c "import jax; k = jax.devices()[0].device_kind
print('h200' if 'H200' in k else 'h100-sxm' if 'H100' in k else 'cpu' if jax.default_backend() == 'cpu' else '')")
  timeout ${STEP_LIMIT:-100} $PY benchmarks/train_step.py --models=${MODELS:-dncnn,unet1024} \
    --dtypes=float32,bfloat16 --fast=on --steps=${STEPS:-10} ${ACC:+--accelerator=$ACC} \
    --json="$OUT/train_step.json" 2>&1 | tee "$OUT/train_step.log"
fi

if phase ttq; then
  # The schedule's length from the measured DnCNN float32 step (x1.1 for the loop's own work)
  # after ~40 s of start-up; without a measurement the config's own constants stand.
  TOTAL=$($PY - "$OUT/train_step.json" "$MINUTES" <<'PYEOF'
import json, sys
try:
  rows = json.load(open(sys.argv[1]))["rows"]
  (t,) = [r["step_s"] for r in rows if r["model"] == "dncnn" and r["dtype"] == "float32"]
  print(max(int((60 * float(sys.argv[2]) - 40) / (1.1 * t)), 1000))
except Exception:  # no measurement: keep the config's
  pass
PYEOF
  )
  echo "total_steps=${TOTAL:-from the config}"
  W=/tmp/ttq_gpu
  (while sleep 5; do cp $W/time_to_quality.json $W/metrics.jsonl "$OUT/" 2>/dev/null; done) &
  COPIER=$!
  timeout $(( ${MINUTES%.*} * 60 + ${EVAL_LIMIT:-150} )) $PY benchmarks/time_to_quality.py \
    --config=configs/dncnn.py:gpu=$MINUTES --workdir=$W --minutes=$MINUTES \
    --every=${EVERY:-1.25} --train=folder:$DATA/Train400 --test=folder:$DATA/BSD68 \
    ${TOTAL:+--set=total_steps=$TOTAL} 2>&1 | tee "$OUT/ttq.log" \
    | grep --line-buffered -v "^I[0-9]\{4\} \|step/s\]"      # the console: no INFO lines
  kill $COPIER
  cp $W/time_to_quality.json $W/metrics.jsonl $W/config.json "$OUT/" 2>/dev/null
fi

if phase torch_peer; then
  # Several processes share the GPU here: JAX must not take 75% of its memory in each.
  XLA_PYTHON_CLIENT_PREALLOCATE=false timeout ${PEER_LIMIT:-150} $PY benchmarks/torch_peer.py \
    --models=${MODELS:-dncnn,unet1024} --dtypes=float32,bfloat16 --steps=${STEPS:-10} \
    --json="$OUT/torch_peer.json" 2>&1 | tee "$OUT/torch_peer.log"
fi
phase done
