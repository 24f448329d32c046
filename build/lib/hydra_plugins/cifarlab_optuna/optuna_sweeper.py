"""``hydra/sweeper=cifarlab_optuna``: a Hydra Sweeper that drives Optuna's current release.

Why our own: the official ``hydra-optuna-sweeper`` (1.3.0, the latest) requires ``optuna<3`` and
so installs optuna 2.10.1, whose SQLite storage fails on SQLAlchemy 2.x (an ``AssertionError`` in
optuna's schema-version check, ``get_current_version``; checked with SQLAlchemy 2.1.9), and
SQLAlchemy 1.4 conflicts with current alembic. Without a working storage an interrupted search
cannot continue. This sweeper keeps the official plugin's config shape (``direction``,
``study_name``, ``storage``, ``n_trials``, ``n_jobs``, ``sampler``, and ``params`` in Hydra's
override grammar), so the search space lives in YAML and its keys are plain config keys:
it asks Optuna for trials, launches them through Hydra's configured launcher (job ``N`` is
trial ``N``), and tells Optuna the values the task function returns.

Resuming: run the same command with ``hydra.sweep.dir=<the sweep dir>``. The study is loaded
from its storage; ``n_trials`` counts completed trials, so only the missing ones run; a trial
left running by an interrupted search is marked failed and its parameters are tried again first.
"""
# No ``from __future__ import annotations``: Hydra's plugin scan executes this module without
# registering it in sys.modules, and dataclasses cannot resolve string annotations then.
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    """``hydra.sweeper`` when ``hydra/sweeper=cifarlab_optuna`` (the defaults; see ``conf/hparams_search``)."""

    _target_: str = "hydra_plugins.cifarlab_optuna.optuna_sweeper.OptunaSweeper"
    direction: str = "maximize"          # maximize | minimize the task function's return value
    study_name: Optional[str] = None
    storage: Optional[str] = None        # e.g. sqlite:///${hydra.sweep.dir}/optuna.db; None: in memory, no resume
    n_trials: int = 20                   # completed trials the study should hold at the end
    n_jobs: int = 1                      # trials handed to the launcher at once
    sampler: Any = None                  # an optuna sampler (Hydra spec); None: Optuna's default (TPE)
    params: Optional[Dict[str, str]] = None  # key: choice(...) | interval(lo, hi) | tag(log, interval(lo, hi)) | value


ConfigStore.instance().store(group="hydra/sweeper", name="cifarlab_optuna", node=OptunaSweeperConf,
                             provider="cifarlab")


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override, or ``None`` for a plain value.

    ``choice(a, b)`` / ``a,b`` -> categorical; ``interval(lo, hi)`` -> float on [lo, hi] (Hydra
    parses interval bounds as floats); ``tag(log, interval(lo, hi))`` the same on a log scale.

    Raises:
        ValueError: another sweep (``range``, ``glob``, a shuffled choice), named in the message.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) and not value.shuffle:
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, IntervalSweep):
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    raise ValueError(f"{override.input_line}: the Optuna sweeper takes choice(...), interval(lo, hi) or "
                     "tag(log, interval(lo, hi))")


class OptunaSweeper(Sweeper):
    """Ask Optuna for ``n_trials`` trials, run them with Hydra's launcher, tell Optuna their values.

    Args: see :class:`OptunaSweeperConf`. A job that fails, or returns something that is not a
    number (``train.py`` returns ``None`` with ``data.val_size=0``), is told to Optuna as failed,
    and the sweep stops with that job's error after the trials of its batch are recorded.
    """

    def __init__(self, direction: str, study_name: str | None, storage: str | None, n_trials: int, n_jobs: int,
                 sampler: Any, params: DictConfig | None) -> None:
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.sampler = n_trials, n_jobs, sampler
        self.params = {str(k): str(v) for k, v in (params or {}).items()}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def search_space(self, arguments: List[str]) -> tuple[dict[str, Any], list[str]]:
        """(distributions by config key, fixed overrides) from ``params`` then the command line
        (a key given on both: the command line wins, a plain value there fixes it)."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        by_key: dict[str, Override] = {}
        for override in parser.parse_overrides(lines):
            by_key.pop(override.get_key_element(), None)
            by_key[override.get_key_element()] = override
        space = {key: d for key, o in by_key.items() if (d := distribution(o)) is not None}
        fixed = [o.input_line for key, o in by_key.items() if key not in space]
        return space, fixed

    def sweep(self, arguments: List[str]) -> list[Sequence[JobReturn]]:
        import optuna

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # before the study: its SQLite file lives here
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        space, fixed = self.search_space(arguments)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    direction=self.direction, load_if_exists=True)
        if study.trials:
            # A resumed search: a sampler seeded as before would redraw the first run's random trials.
            study.sampler.reseed_rng()
            self.retry_interrupted(study)
        log.info(f"Optuna study {study.study_name!r} ({self.storage or 'in memory'}): {self.completed(study)} of "
                 f"{self.n_trials} trials done; {self.direction} over {', '.join(space)}")
        returns = []
        while (to_go := self.n_trials - self.completed(study)) > 0:
            trials = [study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, to_go))]
            # choice values come encoded for the override grammar (Transformer.encode), numbers print as is
            batch = [tuple(fixed + [f"{key}={value}" for key, value in trial.params.items()]) for trial in trials]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            returns.append(results)
            failed = [r for trial, r in zip(trials, results) if not self.tell(study, trial, r)]
            for result in failed:
                if result.status == JobStatus.FAILED:
                    _ = result.return_value  # re-raises the job's exception, with its traceback
                raise ValueError(f"a job returned {result.return_value!r}, not a number to {self.direction}")
        best = study.best_trial
        log.info(f"Best trial {best.number}: {best.value} with {best.params}")
        OmegaConf.save(OmegaConf.create({"name": "optuna", "study_name": study.study_name, "best_trial": best.number,
                                         "best_value": best.value, "best_params": best.params,
                                         "completed_trials": self.completed(study)}),
                       sweep_dir / "optimization_results.yaml")
        return returns

    def tell(self, study: Any, trial: Any, result: JobReturn) -> bool:
        """Report ``result`` to Optuna; False (the trial told as failed) for a failed job or a non-number."""
        import optuna

        value = result.return_value if result.status == JobStatus.COMPLETED else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            study.tell(trial, float(value))
            log.info(f"Trial {trial.number}: {value} with {trial.params}")
            return True
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning(f"Trial {trial.number} failed with {trial.params}")
        return False

    @staticmethod
    def completed(study: Any) -> int:
        import optuna

        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))

    @staticmethod
    def retry_interrupted(study: Any) -> None:
        """Trials still marked running in the storage were cut off by an interrupted search:
        mark them failed and queue their parameters to run first."""
        import optuna

        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.enqueue_trial(trial.params)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            log.info(f"Trial {trial.number} was interrupted: running {trial.params} again")
