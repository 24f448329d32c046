"""Serve a trained classifier in a Gradio app: ``cifarlab-app ckpt_path=<run dir or .ckpt> [key=value ...]``."""
import hydra
from omegaconf import DictConfig, OmegaConf

from cifarlab.app.config import AppConfig
from cifarlab.app.ui import serve
from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="app")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: AppConfig = OmegaConf.to_object(cfg)
        serve(settings)


if __name__ == "__main__":
    main()
