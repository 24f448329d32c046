"""Top-k classes of image files: ``cifarlab-predict ckpt_path=<run dir or .ckpt> inputs=<folder, glob or file> [key=value ...]``."""
import hydra
from omegaconf import DictConfig, OmegaConf

from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.serving.config import PredictConfig
from cifarlab.serving.predict import predict


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        settings: PredictConfig = OmegaConf.to_object(cfg)
        predict(settings)


if __name__ == "__main__":
    main()
