"""Serve a trained classifier in a Gradio app: ``python app.py ckpt_path=<run dir or .ckpt> [key=value ...]``."""
import hydra
from omegaconf import DictConfig

from cifarlab.app import serve
from cifarlab.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        serve(cfg.ckpt_path, data_root=cfg.data_root, eval_dir=cfg.eval_dir, server_name=cfg.server_name,
              server_port=cfg.server_port, max_megapixels=cfg.max_megapixels, max_file_size=cfg.max_file_size)


if __name__ == "__main__":
    main()
