"""Evaluate a trained run on the test set: ``cifarlab-evaluate ckpt_path=<run dir or .ckpt> [key=value ...]``."""
import hydra
from omegaconf import DictConfig, OmegaConf

from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.reports.config import EvalConfig
from cifarlab.reports.evaluate import evaluate


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: EvalConfig = OmegaConf.to_object(cfg)
        evaluate(settings)


if __name__ == "__main__":
    main()
