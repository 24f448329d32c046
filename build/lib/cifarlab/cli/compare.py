"""Is B better than A on the test set? ``cifarlab-compare a=<run or sweep dir> b=<run or sweep dir>``."""
import hydra
from omegaconf import DictConfig, OmegaConf

from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.reports.compare import compare
from cifarlab.reports.config import CompareConfig


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="compare")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: CompareConfig = OmegaConf.to_object(cfg)
        compare(settings)


if __name__ == "__main__":
    main()
