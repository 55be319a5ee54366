#!/bin/bash
# The CIFAR-10 block-inpainting study (benchmarks/cifar_study.py) on a lent GPU: every level x
# seed of the study's own protocol, and the project's recipes (configs/cifar_study.py:beat=...)
# at the study's CPU budget, many small runs at once on one GPU, each scored on the test set.
#
#   PHASES=pack bash benchmarks/gpu_study.sh OUT             # here: writes .gpu/c1, .gpu/c2
#   PHASES=stage,probe bash benchmarks/gpu_study.sh OUT      # call 1 (carry .whl .gpu/c1)
#   PHASES=stage,run   bash benchmarks/gpu_study.sh OUT      # call 2, at once (carry .gpu/c2)
#
# Why two calls: one call carries at most 64 MiB, and the six CIFAR-10 shards are ~115 MB even
# delta-filtered and xz-compressed; the first call leaves its half (and the installed wheels)
# in /tmp of the still-warm machine, so the second must be asked for within its 30 s warm
# window (a fresh machine has neither: the stage phase then lacks shards and the runs fail on
# the missing data spec).
# Measured (session 10, P=8, no MPS): the 9 study runs of 25,000 steps, 8 at once, each ~3.3
# minutes; five recipes x 3 levels after them in the rest of a 440 s deadline (WORKSPACE).
# pack   (here) benchmarks/cifar_shards.py: each shard as its rows' pixel differences, xz'd:
#        .gpu/c1 = train_0, train_1, train_4 (with .whl: ~61 MiB; enough for the probe: two
#        training shards and the validation one); .gpu/c2 = train_2, train_3, test (~57 MiB);
# stage  installs .whl/*.whl into /tmp/site once and unpacks every carried .gpu/c*/NAME.xz into
#        /tmp/cifar10/NAME.npz, linked as ../shared/data/cifar10 (where configs/cifar_study.py
#        reads it), so run configs are the same as on the CPU;
# probe  loop speed of the study's run with 1 and P concurrent processes (P=${P:-6}), 30 s each;
# run    the job list (study runs first, then the recipes), P at a time, each job given what is
#        left of DEADLINE seconds (default 480); then the tables, and the run directories
#        (final checkpoint, config, logs, eval) as OUT/study_runs.tgz.
# Run from the repository root.
set -u -o pipefail
OUT=${1:?OUT}
PHASES=${PHASES:-stage,run}
P=${P:-6}
DEADLINE=${DEADLINE:-480}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
PY=${PYTHON:-python3}
T0=$(date +%s)
mkdir -p "$OUT"
phase() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; [[ ",$PHASES," == *",$1,"* ]]; }

if phase pack; then
  $PY benchmarks/cifar_shards.py --pack=.gpu/c1 train_0 train_1 train_4 || exit 1
  $PY benchmarks/cifar_shards.py --pack=.gpu/c2 train_2 train_3 test || exit 1
fi

if phase stage; then
  if [ ! -d /tmp/site ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  fi
  mkdir -p /tmp/cifar10
  $PY benchmarks/cifar_shards.py --unpack='.gpu/c*/*.xz' --to=/tmp/cifar10 || exit 1
  if [ ! -e ../shared/data/cifar10 ]; then mkdir -p ../shared/data && ln -s /tmp/cifar10 ../shared/data/cifar10; fi
  ls -la ../shared/data/cifar10/ | head
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

if phase probe; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
  speed() {  # $1 processes of the study's run for 30 s: steps/s of each, after compilation
    rm -rf /tmp/probe; local i
    for i in $(seq 1 "$1"); do
      timeout -s TERM 30 $PY launch.py --config=configs/cifar_study.py:blocks=10,seed=$i \
        --workdir=/tmp/probe/p$i > /tmp/probe_$i.log 2>&1 &
    done
    wait
    $PY - "$1" <<'PYEOF'
import json, sys
rates = []
for i in range(1, int(sys.argv[1]) + 1):
  try:
    logs = [json.loads(l) for l in open(f"/tmp/probe/p{i}/metrics.jsonl")]
  except OSError:
    print(f"process {i}: no metrics; log tail:", open(f"/tmp/probe_{i}.log").read()[-600:]); continue
  r = [l["steps_per_sec"] for l in logs if l["kind"] == "train"][1:]
  rates.append(sorted(r)[len(r) // 2] if r else 0.0)
print(f"{sys.argv[1]} process(es): steps/s each {[round(x) for x in rates]}, together {sum(rates):.0f}")
PYEOF
  }
  speed 1
  speed "$P"
  if nvidia-cuda-mps-control -d 2>/dev/null; then echo "MPS on"; speed "$P"; echo quit | nvidia-cuda-mps-control; fi
fi

if phase run; then
  [ "${MPS:-0}" = 1 ] && nvidia-cuda-mps-control -d && echo "MPS on"
  R=/tmp/study_runs
  # One job per run: RUNS_DIR VARIANT LEVEL SEED (VARIANT '-' = the study's own recipe).
  JOBS=${JOBS:-/tmp/jobs.txt}
  if [ ! -s "$JOBS" ]; then
    for s in 0 1 2; do for l in 10 50 100; do echo "$R/study - $l $s"; done; done > "$JOBS"
    for v in ${VARIANTS:-beat=6 beat=10 beat=17 beat=10,width=32 beat=17,width=32}; do
      for l in 10 50 100; do echo "$R/${v//[=,]/_} $v $l 0"; done; done >> "$JOBS"
  fi
  export PY T0 DEADLINE
  job() {
    local left=$(( DEADLINE - ($(date +%s) - T0) ))
    [ "$left" -gt 20 ] || { echo "skipped (no time): $*"; return 0; }
    local v=""; [ "$2" != - ] && v="--variant=$2"
    mkdir -p "$1"
    timeout -s TERM "$left" $PY benchmarks/cifar_study.py --runs="$1" --levels="$3" --seeds="$4" \
      $v --train > "$1/b$3_s$4.log" 2>&1
    echo "done ($?) at $(( $(date +%s) - T0 )) s: $*"
  }
  export -f job
  tr '\n' '\0' < "$JOBS" | xargs -0 -P "$P" -I{} bash -c 'job {}'
  for d in $R/*/; do
    v=$(awk -v d="${d%/}" '$1 == d {print $2; exit}' "$JOBS")
    echo "=== ${d} (variant ${v})"
    va=""; [ -n "$v" ] && [ "$v" != - ] && va="--variant=$v"
    $PY benchmarks/cifar_study.py --runs="${d%/}" $va 2>/dev/null | grep -v '^+' \
      | grep -v 'no checkpoint at' | tee -a "$OUT/tables.md"
  done
  # The record (config, logs, timing, eval results) of every run, and the study runs' final
  # checkpoints (the recipes' are larger than a returned file may be).
  (cd /tmp && tar czf "$OUT/study_runs.tgz" --exclude='*/best' --exclude='*/tensorboard' \
     --exclude='*/images' --exclude='*/plots' --exclude='*/checkpoints' study_runs)
  (cd /tmp && tar czf "$OUT/study_checkpoints.tgz" study_runs/study/*/checkpoints/25000)
  ls -la "$OUT"
fi
