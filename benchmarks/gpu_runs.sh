#!/usr/bin/env bash
# The GPU measurements, in parts that each fit a 10-minute job on a one-GPU machine:
#   bash benchmarks/gpu_runs.sh seeds            speedrun and page_24ep, seeds 0,1,2, and the sync count per step
#                                                (about 7 min on an H100-class GPU)
#   bash benchmarks/gpu_runs.sh recipes bench    page_24ep_tricks, custom_resnet_24ep, resnet18_20ep; make bench
# It needs a CUDA GPU and a Python with cifarlab installed: python3 (make install, then source .venv/bin/activate;
# or pip install .), or the one $PYTHON names (PYTHON=.venv/bin/python). The data: the folder holding
# cifar-10-batches-py/ in $CIFARLAB_DATA, else data/ (torchvision downloads it there when it is missing).
# Each part checks the libraries and CUDA first and stops at the first failure; metrics and logs go to $OUT
# (or /tmp/gpu_out) as one tarball.
# A GPU machine without a network: `bash benchmarks/gpu_runs.sh prepare`, on a machine whose ../shared holds the
# wheels and a data archive, copies them into .device/ (gitignored), to be carried with the checkout; where
# .device/setup.sh exists, each part installs the wheels and builds the data in /tmp/data with it instead.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
  [ -d ../shared/device ] || { echo "error: no ../shared/device here: prepare is only for a machine that has it;" \
    "elsewhere run the other parts directly"; exit 2; }
  mkdir -p .device && grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo /.device/ >> .git/info/exclude
  cp -r ../shared/device/* ../shared/data/cifar10-jpeg.tar.xz ../shared/data/build_pickles.py .device/ &&
    echo "prepared .device/: run the other parts on the GPU machine with .device carried"
  exit $?
fi
[ $# -gt 0 ] || { echo "usage: bash benchmarks/gpu_runs.sh seeds | recipes | bench ... (or prepare)"; exit 2; }
PY=${PYTHON:-python3}
if [ -f .device/setup.sh ]; then
  DATA=/tmp/data
  source .device/setup.sh "$DATA" || { echo "error: .device/setup.sh failed"; exit 2; }
else
  DATA=${CIFARLAB_DATA:-data}
fi
"$PY" - "$DATA" <<'PY' || exit 2
import importlib, sys
from pathlib import Path
try:
    import cifarlab  # noqa: F401
    import torch
except ImportError as err:
    sys.exit(f"error: {err}: install cifarlab (make install, then source .venv/bin/activate; or pip install .), "
             "or name its Python with PYTHON=...")
need = {"lightning": "2.6", "hydra": "1.3", "omegaconf": "2.3", "albumentations": "2.0", "torchmetrics": "1."}
bad = [f"{name} {getattr(importlib.import_module(name), '__version__', '?')} (want {want}*)" for name, want in need.items()
       if not getattr(importlib.import_module(name), "__version__", "").startswith(want)]
if not torch.cuda.is_available():
    bad.append("torch sees no CUDA device")
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if bad:
    sys.exit("error: " + "; ".join(bad))
root = Path(sys.argv[1])
if not (root / "cifar-10-batches-py" / "test_batch").is_file():
    print(f"no CIFAR-10 in {root}: downloading it there (or set CIFARLAB_DATA to the folder holding cifar-10-batches-py/)")
    from torchvision.datasets import CIFAR10
    CIFAR10(str(root), download=True)
PY
OUT=${OUT:-/tmp/gpu_out}; R=/tmp/runs; mkdir -p "$OUT" $R
export PYTHONUNBUFFERED=1

run() {  # limit_s, name, overrides...: one train.py run; returns train.py's status
  local limit=$1 name=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$PY" train.py data.root="$DATA" hydra.run.dir=$R/$name "$@" > $R/$name.log 2>&1
  local rc=$?
  echo "== $name: exit $rc, process wall $((SECONDS - t0)) s"
  cp $R/$name/metrics.json "$R/$name.json" 2>/dev/null || tail -25 $R/$name.log
  return $rc
}

summary() {  # mean ± std of the seeds of each preset found in $R
  "$PY" - "$R" <<'PY'
import json, statistics, sys
from pathlib import Path
runs_dir = Path(sys.argv[1])
for preset in ("page", "speed"):
    runs = [json.loads(p.read_text()) for p in sorted(runs_dir.glob(f"{preset}[0-9].json"))]
    if not runs:
        continue
    def stat(values, fmt):
        values = list(values)
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.mean(values):{fmt}} ± {std:{fmt}}"
    print(f"{preset} n={len(runs)}: test acc {stat((100 * r['test']['acc'] for r in runs), '.2f')} %,"
          f" TTA {stat((100 * (r['test']['acc_tta'] or 0) for r in runs), '.2f')} %,"
          f" train {stat((r['train_seconds'] for r in runs), '.2f')} s,"
          f" warm-up/compile {stat(((r.get('compile_seconds') or 0) for r in runs), '.1f')} s")
PY
}

for part in "$@"; do
  case $part in
    seeds)
      run 150 speed0 experiment=speedrun seed=0 || break
      run 150 page0 experiment=page_24ep seed=0 || break
      for seed in 1 2; do run 120 speed$seed experiment=speedrun seed=$seed; run 120 page$seed experiment=page_24ep seed=$seed; done
      summary
      timeout 90 "$PY" benchmarks/sync_check.py experiment=page_24ep trainer.max_epochs=2 data.root="$DATA" \
        hydra.run.dir=$R/sync > $R/sync.log 2>&1
      grep "^syncs:" $R/sync.log || tail -20 $R/sync.log ;;
    recipes)
      run 150 tricks experiment=page_24ep_tricks seed=0
      run 200 seed_recipe experiment=custom_resnet_24ep seed=0
      run 200 resnet18 experiment=resnet18_20ep seed=0 ;;
    bench)
      timeout 240 "$PY" benchmarks/throughput.py --data-root "$DATA" > $R/bench.txt 2>&1; tail -16 $R/bench.txt ;;
    *) echo "unknown part: $part (seeds, recipes, bench; prepare alone, first)"; exit 2 ;;
  esac
done
tar czf "$OUT/gpu_$(date +%H%M%S).tar.gz" -C $R --exclude='*.ckpt' --exclude='events.out*' . 2>/dev/null
