# The GPU measurements of issue #7, for one `device` call (see ../shared/README.md): run from the repo root as
#   source .device/setup.sh /tmp/data && bash benchmarks/gpu_runs.sh
# It writes each run's metrics.json and the bench table to $OUT (or /tmp/gpu_out). Runs go to /tmp/runs.
set -u
OUT=${OUT:-/tmp/gpu_out}; R=/tmp/runs; mkdir -p "$OUT" $R
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() {  # name, overrides...
  local name=$1; shift
  python3 train.py data.root=/tmp/data hydra.run.dir=$R/$name "$@" > $R/$name.log 2>&1
  cp $R/$name/metrics.json "$OUT/$name.json" 2>/dev/null || tail -20 $R/$name.log
}
for seed in 0 1 2; do run page$seed experiment=page_24ep seed=$seed; run speed$seed experiment=speedrun seed=$seed; done
run seed_recipe experiment=custom_resnet_24ep seed=0
run resnet18 experiment=resnet18_20ep seed=0
python3 benchmarks/throughput.py --data-root /tmp/data > "$OUT/bench.txt" 2>&1
python3 benchmarks/sync_check.py experiment=page_24ep trainer.max_epochs=2 data.root=/tmp/data hydra.run.dir=$R/sync 2>&1 \
  | grep -i -B1 "synchroniz" > "$OUT/syncs.txt"
python3 - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
for preset in ("page", "speed"):
    runs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{preset}[0-9].json"))]
    acc = [100 * (r["test"]["acc_tta"] or r["test"]["acc"]) for r in runs]
    secs = [r["fit_seconds"] + r["test_seconds"] for r in runs]
    if len(runs) > 1:
        print(preset, f"acc {statistics.mean(acc):.2f} ± {statistics.stdev(acc):.2f} %", f"fit+test {statistics.mean(secs):.1f} s",
              f"train {statistics.mean(r['train_seconds'] for r in runs):.1f} s", f"compile {runs[0]['compile_seconds']:.1f} s")
PY
