"""cifarlab: a Hydra-configured runner for training and explaining CIFAR-10 classifiers."""
from cifarlab.config.resolvers import register_resolvers
from cifarlab.config.schema import register_schema

register_resolvers()
register_schema()

__version__ = "0.1.0"
