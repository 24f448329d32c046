"""cifarlab: a Hydra-configured runner for training and explaining CIFAR-10 classifiers."""
from cifarlab.config import register_resolvers

register_resolvers()

__version__ = "0.1.0"
