"""Train a CIFAR-10 classifier: ``cifarlab-train [group=option ...] [key=value ...]``."""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cifarlab.training.budget import job_start
from cifarlab.cli import CONFIG_PATH
from cifarlab.errors import exit_on_user_error
from cifarlab.training.distributed import ddp_job
from cifarlab.runs.sweeps import check_optimized_metric, objective
from cifarlab.training.pipeline import train

SCRIPT = Path(__file__).resolve()  # what Lightning re-runs for each extra DDP rank (cifarlab.training.distributed)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns ``optimized_metric`` of the held-out split (default ``val/acc``, a fraction), the objective of Hydra's
    sweepers; ``None`` with ``data.val_size=0``, where the only other score is the test set's."""
    with exit_on_user_error(), ddp_job(SCRIPT):
        check_optimized_metric(cfg.optimized_metric)
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None  # None: called by a test
        return objective(train(cfg, overrides=overrides, started_at=job_start()), cfg.optimized_metric)


if __name__ == "__main__":
    main()
