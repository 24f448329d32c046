"""``python benchmarks/sync_check.py [train.py overrides]``: train.py with CUDA's sync debug mode on;
each distinct place that makes the host wait on the GPU warns once (issue #7: none per step)."""
import runpy
import sys
import warnings

import torch

torch.cuda.set_sync_debug_mode("warn")
warnings.simplefilter("default")
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
