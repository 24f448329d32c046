"""Export a trained model, uint8 images in, logits out: ``cifarlab-export ckpt_path=<run dir or .ckpt> format=onnx|torchscript``."""
import hydra
from omegaconf import DictConfig, OmegaConf

from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.serving.config import ExportConfig
from cifarlab.serving.export import export


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: ExportConfig = OmegaConf.to_object(cfg)
        export(settings)


if __name__ == "__main__":
    main()
