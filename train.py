"""Train a CIFAR-10 classifier: ``python train.py [group=option ...] [key=value ...]``.

Installed as ``cifarlab-train`` (:mod:`cifarlab.cli.train`)."""
from cifarlab.cli.train import main

if __name__ == "__main__":
    main()
