"""Draw the data figures: ``cifarlab-data-figures [data.root=...]`` -> samples.png, augmentations.png."""
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.reports.config import DataFiguresConfig
from cifarlab.reports.data_figures import write_data_figures


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="data_figures")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: DataFiguresConfig = OmegaConf.to_object(cfg)
        out = Path(settings.paths.output_dir)
        write_data_figures(instantiate(settings.data, _convert_="all", _recursive_=False), out,
                           settings.num_samples, settings.image_size)
        Console().print(f"wrote samples.png and augmentations.png to {out}")


if __name__ == "__main__":
    main()
