"""Evaluate a trained run: ``python evaluate.py ckpt_path=<checkpoint or run dir>``,
or draw the data figures: ``python evaluate.py mode=data``."""
from pathlib import Path

import hydra
from omegaconf import DictConfig

from cifarlab.cli import exit_on_user_error
from cifarlab.reports import run


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        run(cfg, Path(cfg.paths.output_dir))


if __name__ == "__main__":
    main()
