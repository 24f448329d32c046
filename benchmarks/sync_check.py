"""``python benchmarks/sync_check.py [train.py overrides]``: train.py with CUDA's sync debug mode on, counting
every place where the host waits on the GPU. Prints ``syncs: N in S training steps (N/S per step)``: the goal
is no sync per step (a handful at start-up, epoch ends and the test are expected)."""
import atexit
import runpy
import sys
import warnings

import torch

syncs = {"count": 0}
_show = warnings.showwarning


def _count(message, category, filename, lineno, file=None, line=None):
    if "synchroniz" in str(message).lower():
        syncs["count"] += 1
        if syncs["count"] <= 20:  # where the first ones come from
            _show(message, category, filename, lineno, file, line)
        return
    _show(message, category, filename, lineno, file, line)


def _report() -> None:
    from cifarlab.runs.rundir import RunDir

    steps = 0
    for arg in sys.argv:
        if arg.startswith("hydra.run.dir="):
            result = RunDir(arg.split("=", 1)[1]).read_result()
            steps = result.global_step if result else 0
    per_step = f"{syncs['count'] / steps:.2f} per step" if steps else "steps unknown"
    print(f"syncs: {syncs['count']} in {steps} training steps ({per_step})", flush=True)


warnings.showwarning = _count
warnings.simplefilter("always")
torch.cuda.set_sync_debug_mode("warn")
atexit.register(_report)
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
