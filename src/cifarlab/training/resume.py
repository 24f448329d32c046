"""What ``resume=`` continues, and what may change when it does.

``resume=<run dir>`` continues that run from its ``checkpoints/last.ckpt`` with the config it began with
(its ``config.yaml``), into the same dir; ``resume=last`` finds the newest run of the task. The resumed
process's own log (``train.log``) lands in that dir too: ``conf/train.yaml`` sets ``hydra.run.dir`` with
:func:`run_dir_resolver` and Hydra's ``output_subdir`` with :func:`hydra_subdir_resolver`, so the
resumed process keeps the run's first ``.hydra/`` as it was and writes its own under ``.hydra/resumed_<time>``.

An override given with ``resume`` would be silently dropped (the run continues as it began) or, applied,
would make one run out of two configs; so only the overrides in :data:`ALLOWED_WITH_RESUME`, which change
where and how fast the run goes but not what it computes, are accepted (and applied); any other is an error.
"""
from __future__ import annotations

import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from cifarlab.errors import ConfigError
from cifarlab.runs.rundir import RunDir

LAST = "last"
OUTPUTS = Path("outputs")  # where conf/train.yaml puts runs: outputs/<task_name>/runs/<run>, relative to the working dir
# Overrides a resumed run accepts, a key or a whole group below it ("hydra" covers hydra.run.dir and hydra/launcher):
# where the data is, how many devices, nodes and loader workers run it, the progress bar, Hydra's own settings;
# experiment and task_name only pick the task whose newest run resume=last continues (and must be that run's).
ALLOWED_WITH_RESUME = ("resume", "experiment", "task_name", "data.root", "data.num_workers", "trainer.devices",
                       "trainer.num_nodes", "callbacks.progress_bar", "hydra")
_SELECTORS = ("resume", "experiment", "task_name")  # read from the command line, not copied into the resumed config


def allowed_with_resume(key: str) -> bool:
    """Whether the override of ``key`` (``trainer.devices``, ``hydra/launcher``) is in :data:`ALLOWED_WITH_RESUME`."""
    return any(key == a or key.startswith((a + ".", a + "/")) for a in ALLOWED_WITH_RESUME)


def checkpoint_of(run_dir: Path) -> Path:
    """``run_dir/checkpoints/last.ckpt``: what a resumed run continues from."""
    return RunDir(run_dir).last_checkpoint


def last_run(task_name: str, outputs: Path = OUTPUTS) -> Path:
    """The run dir ``resume=last`` continues: of ``outputs/<task_name>/runs/*`` holding a
    ``checkpoints/last.ckpt``, the one whose checkpoint was written last.

    Raises:
        ConfigError: no such run, or the newest one finished (it wrote ``metrics.json``: nothing to continue).
    """
    runs = outputs / task_name / "runs"
    candidates = [d for d in runs.glob("*") if checkpoint_of(d).is_file()]
    if not candidates:
        raise ConfigError(
            f"resume=last: no run of task {task_name!r} has a checkpoint (looked for {runs}/*/checkpoints/last.ckpt "
            "under the working dir). Give the experiment the run was started with (resume=last experiment=cpu_quick), "
            "or the run dir itself (resume=outputs/<task>/runs/<run>)."
        )
    newest = max(candidates, key=lambda d: checkpoint_of(d).stat().st_mtime)
    if RunDir(newest).finished:
        raise ConfigError(
            f"resume=last: the newest run of task {task_name!r}, {newest}, finished (it wrote metrics.json): there is "
            "nothing to continue. Give an unfinished run dir instead: resume=outputs/<task>/runs/<run>."
        )
    return newest


def resume_dir(resume: str, task_name: str, outputs: Path = OUTPUTS) -> Path:
    """The run dir that ``resume`` names: :func:`last_run` for ``last``, else the path itself.

    Raises:
        ConfigError: see :func:`last_run`; a path that is not a run dir with ``config.yaml`` and
            ``checkpoints/last.ckpt``.
    """
    run_dir = last_run(task_name, outputs) if resume == LAST else Path(resume).expanduser()
    for path in (RunDir(run_dir).config, checkpoint_of(run_dir)):
        if not path.is_file():
            raise ConfigError(
                f"resume={resume}: {path} is missing. Point resume at a train.py run dir that wrote a checkpoint "
                "(outputs/<task>/runs/<run>), or resume=last; a run killed before its first checkpoint cannot be continued."
            )
    return run_dir.resolve()


def resumable(resume: str | None, task_name: str) -> Path | None:
    """:func:`resume_dir`, or ``None`` when ``resume`` is unset or names no resumable run."""
    try:
        return resume_dir(resume, task_name) if resume else None
    except ConfigError:
        return None


def run_dir_resolver(resume: str | None, task_name: str, new_dir: str) -> str:
    """``${run_dir:${resume},${task_name},<new run's dir>}`` for ``hydra.run.dir``: the dir of the run that
    ``resume`` continues, so that the resumed process logs there (``train.log`` grows), else ``new_dir``.
    A ``resume`` that names no resumable run also gives ``new_dir``; training then stops with
    :func:`resume_dir`'s message."""
    run_dir = resumable(resume, task_name)
    return new_dir if run_dir is None else str(run_dir)


def hydra_subdir_resolver(resume: str | None, task_name: str) -> str:
    """``${hydra_subdir:${resume},${task_name}}`` for ``hydra.output_subdir``: ``.hydra`` for a new run; for
    a resumed one ``.hydra/resumed_<date>_<time>``, so that the run's own ``.hydra/`` (its overrides, which
    sweep summaries read) stays as the first start wrote it."""
    resumed = resumable(resume, task_name) is not None
    return RunDir.hydra_subdir(time.strftime("%Y-%m-%d_%H-%M-%S") if resumed else None)


def check_overrides(overrides: list[str], resume: str) -> list[str]:
    """The keys of ``overrides`` (Hydra's command-line overrides, e.g. ``HydraConfig.get().overrides.task``)
    to carry into the resumed config: those in :data:`ALLOWED_WITH_RESUME` but the selectors and Hydra's.

    Raises:
        ConfigError: an override outside :data:`ALLOWED_WITH_RESUME`; the message names each one.
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    refused = [o.input_line for o in parsed if not allowed_with_resume(o.key_or_group)]
    if refused:
        raise ConfigError(
            f"resume={resume} continues the run with the config it began with, so {' '.join(refused)} would not "
            f"apply. With resume, only these may change: {', '.join(a for a in ALLOWED_WITH_RESUME if a != 'resume')} "
            "(and the keys below them). Start a new run for other settings, or edit the run's config.yaml if you "
            "mean to change this one."
        )
    keys = [o.key_or_group for o in parsed]
    return [k for k in keys if k not in _SELECTORS and not k.startswith(("hydra.", "hydra/"))]


def apply_overrides(saved: DictConfig, given: DictConfig, keys: list[str]) -> None:
    """Copy each of ``keys`` (dotted) from the composed config ``given`` into ``saved``, in place; a key
    that ``given`` lacks (a ``~key`` override) is removed from ``saved``."""
    missing = object()
    with open_dict(saved):
        for key in keys:
            value = OmegaConf.select(given, key, default=missing)
            if value is missing:
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(saved, parent) if parent else saved
                if isinstance(node, DictConfig) and leaf in node:
                    del node[leaf]
                continue
            if isinstance(value, DictConfig):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(saved, key, value, merge=False, force_add=True)


def resumed_config(cfg: DictConfig, overrides: list[str] | None = None, outputs: Path = OUTPUTS) -> tuple[DictConfig, Path]:
    """For ``resume=<run dir>`` or ``resume=last`` in the composed ``cfg``: the run's saved config (its
    ``config.yaml``) with ``resume`` and ``paths.output_dir`` set to the run dir and the allowed
    ``overrides`` applied (see :func:`check_overrides`), and the checkpoint to continue from.

    Args:
        cfg: the config ``train.py`` composed, whose ``resume`` and ``task_name`` say which run.
        overrides: the command line's overrides (``HydraConfig.get().overrides.task`` in ``train.py``);
            ``None`` where no command line exists (a test calling :func:`cifarlab.training.train`): nothing
            is checked or applied.
        outputs: where runs are, relative to the working dir (``resume=last``).

    Raises:
        ConfigError: see :func:`resume_dir` and :func:`check_overrides`; ``experiment=`` or
            ``task_name=`` naming another task than the resumed run's.
    """
    run_dir = resume_dir(cfg.resume, cfg.task_name, outputs)
    saved = OmegaConf.create(RunDir(run_dir).read_config())
    if overrides is not None:
        keys = check_overrides(overrides, cfg.resume)
        selects_task = any(o.lstrip("+~").startswith(("experiment=", "task_name=")) for o in overrides)
        if selects_task and saved.get("task_name") != cfg.task_name:
            raise ConfigError(
                f"resume={cfg.resume} is a run of task {saved.get('task_name')!r}, but the command line asks for task "
                f"{cfg.task_name!r} (experiment= or task_name=): drop them, or resume a run of that task."
            )
        apply_overrides(saved, cfg, keys)
    saved = relocated(saved, saved.paths.output_dir, str(run_dir))
    with open_dict(saved):
        saved.resume = str(run_dir)
    return saved, checkpoint_of(run_dir)


def relocated(config: DictConfig, old_dir: str, new_dir: str) -> DictConfig:
    """``config`` (resolved, as ``config.yaml`` holds it) with every path inside the run's first dir
    ``old_dir`` (``paths.output_dir``, the checkpoints' ``dirpath``, the loggers' ``save_dir``...) moved to
    ``new_dir``: a run dir that was moved or copied continues writing into itself."""
    def move(value: object) -> object:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, str) and (value == old_dir or value.startswith(old_dir.rstrip("/") + "/")):
            return new_dir + value[len(old_dir.rstrip("/")):]
        return value
    return OmegaConf.create(move(OmegaConf.to_container(config)))
