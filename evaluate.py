"""Evaluate a trained run on the test set: ``python evaluate.py ckpt_path=<run dir or .ckpt> [key=value ...]``.

Installed as ``cifarlab-evaluate`` (:mod:`cifarlab.cli.evaluate`)."""
from cifarlab.cli.evaluate import main

if __name__ == "__main__":
    main()
