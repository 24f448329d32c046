"""OmegaConf resolvers used by ``conf/``; registered on import of :mod:`cifarlab`."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

from cifarlab.errors import ConfigError
from cifarlab.training.precision import best_precision, on_gpu


def devices_per_node(devices: int | str | list) -> int:
    """The number of devices a job uses on each node, from ``trainer.devices``, for a launcher's
    ``gpus_per_node`` / ``tasks_per_node`` (``conf/hydra/launcher``): an int, or a list of device indices.

    Raises:
        ConfigError: ``auto``, ``-1`` or another value that does not say how many (the machine that
            submits the job is not the one that runs it).
    """
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    raise ConfigError(
        f"trainer.devices={devices!r} does not say how many devices a job needs on each node: with hydra/launcher=slurm "
        "or local give a number, e.g. trainer.devices=4 (and trainer.num_nodes=2 for 2 nodes)"
    )


def rank_zero(value: str) -> str | None:
    """``value`` in the process of global rank 0, ``None`` in the others, the rank read from the
    environment (``RANK``, else ``SLURM_PROCID``): for Hydra's own files, which every task of a SLURM
    job would otherwise write (each runs the job). Ranks that Lightning starts get ``None`` already."""
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))
    return value if int(rank or 0) == 0 else None


def run_name(output_dir: str) -> str:
    """A run dir's name for the trackers: its folder name (``2026-01-31_12-00-00_a1b2c3``); for the
    job of a multirun, whose folder is its job number (``hydra.sweep.subdir`` in ``conf/train.yaml``),
    the sweep's folder name and the number (``2026-01-31_12-00-00_a1b2c3/3``)."""
    path = Path(output_dir)
    return f"{path.parent.name}/{path.name}" if path.name.isdigit() else path.name


def report_dir(ckpt_path: str | None, fallback: str) -> str:
    """Where ``evaluate.py`` writes its report: the ``eval/`` folder of the run that ``ckpt_path`` (a run dir,
    or a ``.ckpt`` in a run's ``checkpoints/``) belongs to; ``fallback`` for a checkpoint outside a run dir."""
    from cifarlab.runs.rundir import RunDir

    if ckpt_path:
        path = Path(ckpt_path).expanduser()
        run = RunDir(path) if path.is_dir() else RunDir.of_checkpoint(path)
        if run is not None:
            return str(run.eval)
    return fallback


def register_resolvers() -> None:
    """``${best_precision:ACCELERATOR}``, ``${on_gpu:ACCELERATOR}``, ``${devices_per_node:DEVICES}``,
    ``${rank_zero:VALUE}``, ``${run_name:OUTPUT_DIR}``,
    ``${report_dir:CKPT_PATH,FALLBACK}``, ``${run_suffix:}`` (6 random hex digits, fixed per
    process, so that two runs started in the same second get different output dirs), and for a resumed run's log
    ``${run_dir:RESUME,TASK_NAME,NEW_DIR}`` and ``${hydra_subdir:RESUME,TASK_NAME}`` (:mod:`cifarlab.training.resume`)."""
    from cifarlab.training.resume import hydra_subdir_resolver, run_dir_resolver

    OmegaConf.register_new_resolver("best_precision", best_precision, replace=True)
    OmegaConf.register_new_resolver("on_gpu", on_gpu, replace=True)
    OmegaConf.register_new_resolver("devices_per_node", devices_per_node, replace=True)
    OmegaConf.register_new_resolver("rank_zero", rank_zero, replace=True)
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("report_dir", report_dir, replace=True)
    OmegaConf.register_new_resolver("run_suffix", lambda: secrets.token_hex(3), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("run_dir", run_dir_resolver, replace=True)
    OmegaConf.register_new_resolver("hydra_subdir", hydra_subdir_resolver, use_cache=True, replace=True)
