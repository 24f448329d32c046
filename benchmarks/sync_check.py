"""``python benchmarks/sync_check.py [train.py overrides]``: run train.py with CUDA's sync debug mode on: each distinct place that waits on the GPU warns once."""
import runpy
import sys
import warnings

import torch

torch.cuda.set_sync_debug_mode("warn")
warnings.simplefilter("default")
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
