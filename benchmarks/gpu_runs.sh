# The GPU measurements of issue #7, in parts that each fit one `device` call (< 10 min). From the repo root:
#   source .device/setup.sh /tmp/data && bash benchmarks/gpu_runs.sh seeds      # page_24ep, speedrun: seeds 0,1,2
#   source .device/setup.sh /tmp/data && bash benchmarks/gpu_runs.sh recipes bench sync
# Each run's metrics.json and log, the bench table and the sync-debug report go to $OUT (or /tmp/gpu_out) as one
# tarball per call (the device tool returns at most 8 files); runs go to /tmp/runs. A failed first run stops the call.
set -u
OUT=${OUT:-/tmp/gpu_out}; R=/tmp/runs; mkdir -p "$OUT" $R
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"

run() {  # limit_s, name, overrides...: one train.py run; returns train.py's status
  local limit=$1 name=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" python3 train.py data.root=/tmp/data hydra.run.dir=$R/$name "$@" > $R/$name.log 2>&1
  local rc=$?
  echo "== $name: exit $rc, process wall $((SECONDS - t0)) s"
  cp $R/$name/metrics.json "$R/$name.json" 2>/dev/null || tail -25 $R/$name.log
  return $rc
}

summary() {  # mean ± std of the seeds of each preset found in $R
  python3 - "$R" <<'PY'
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
          f" fit {stat((r['fit_seconds'] for r in runs), '.2f')} s, test {stat((r['test_seconds'] for r in runs), '.2f')} s,"
          f" compile {stat(((r.get('compile_seconds') or 0) for r in runs), '.1f')} s")
    for r in runs:
        print("  ", {k: r.get(k) for k in ("seed", "global_step", "train_seconds", "fit_seconds", "compile_seconds")},
              r["test"])
PY
}

for part in "$@"; do
  case $part in
    seeds)
      run 240 page0 experiment=page_24ep seed=0 || break
      run 300 speed0 experiment=speedrun seed=0 || break
      for seed in 1 2; do run 240 page$seed experiment=page_24ep seed=$seed; run 240 speed$seed experiment=speedrun seed=$seed; done
      summary ;;
    recipes)
      run 300 seed_recipe experiment=custom_resnet_24ep seed=0
      run 300 resnet18 experiment=resnet18_20ep seed=0 ;;
    bench)
      timeout 300 python3 benchmarks/throughput.py --data-root /tmp/data > $R/bench.txt 2>&1; tail -16 $R/bench.txt ;;
    sync)
      timeout 120 python3 benchmarks/sync_check.py experiment=page_24ep trainer.max_epochs=2 data.root=/tmp/data \
        hydra.run.dir=$R/sync > $R/sync.log 2>&1
      echo "== sync debug: $(grep -ci "synchroniz" $R/sync.log) warnings"; grep -i -B2 "synchroniz" $R/sync.log | head -40 ;;
    *) echo "unknown part: $part (seeds, recipes, bench, sync)"; exit 2 ;;
  esac
done
tar czf "$OUT/gpu_$(date +%H%M%S).tar.gz" -C $R --exclude='*.ckpt' --exclude='events.out*' . 2>/dev/null
