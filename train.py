"""Train a CIFAR-10 classifier: ``python train.py [group=option ...] [key=value ...]``."""
import hydra
from omegaconf import DictConfig

from cifarlab.cli import exit_on_user_error
from cifarlab.training import run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the test accuracy (fraction), the objective of Hydra sweepers."""
    with exit_on_user_error():
        return run(cfg)["test"]["acc"]


if __name__ == "__main__":
    main()
