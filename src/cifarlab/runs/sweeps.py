"""Multirun summaries, and the guard that keeps an optimising sweeper off the test set.

Both are Hydra callbacks, registered under ``hydra.callbacks`` in ``conf/train.yaml``.
:class:`SweepSummary` writes to the sweep dir ``summary.csv``, ``summary.md`` and ``summary.png``:
one row per job (its overrides, held-out validation accuracy, test accuracy, seconds, read from the
job's ``metrics.json``), and the same grouped by everything but ``seed``, as mean ± sample standard
deviation (n - 1) and n. Jobs without ``metrics.json`` (failed, or still running) are listed as such.
It is one module because both callbacks read a sweep's jobs through the same :class:`Job` and
:class:`Group`, which ``compare.py`` uses too.
"""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from cifarlab.errors import ConfigError, exit_on_user_error
from cifarlab.runs.result import TrainResult
from cifarlab.runs.rundir import RunDir, write_atomically

SEED_KEY = "seed"
NO_METRICS = "no metrics.json (failed or unfinished)"
CSV_COLUMNS = ["kind", "job", "config", "seed", "overrides", "status", "n",
               "val_acc", "val_acc_std", "test_acc", "test_acc_std", "seconds", "seconds_std"]


@dataclass
class Job:
    """One job of a sweep: its folder (relative to the sweep dir), overrides and scores.

    ``val_acc`` / ``test_acc`` are fractions in [0, 1] (``val_acc`` is ``None`` with
    ``data.val_size=0``), ``seconds`` the job's ``wall_time_s``; all ``None`` without ``metrics.json``.
    """

    name: str
    overrides: list[str]
    ok: bool
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None

    @property
    def seed(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if override_key(o) == SEED_KEY), "")


@dataclass
class Group:
    """The jobs that share every override but ``seed``."""

    overrides: list[str]
    jobs: list[Job]

    @property
    def n(self) -> int:
        """How many of its jobs have ``metrics.json``."""
        return sum(j.ok for j in self.jobs)

    def values(self, field: str) -> list[float]:
        return [getattr(j, field) for j in self.jobs if getattr(j, field) is not None]

    def mean_std(self, field: str) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation (n - 1) of ``field`` over the jobs that have it;
        ``(None, None)`` without any, std ``None`` with one."""
        values = self.values(field)
        if not values:
            return None, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def override_key(override: str) -> str:
    """``"+a.b=1"`` -> ``"a.b"``: the config key an override sets."""
    return override.split("=", 1)[0].lstrip("+~")


def job_sort_key(path: Path) -> list:
    """Natural order of job folders: ``2`` before ``10``."""
    return [int(p) if p.isdigit() else p for p in path.parts]


def read_jobs(sweep_dir: Path) -> list[Job]:
    """Every job under ``sweep_dir``: a folder holding ``.hydra/overrides.yaml``, in job order."""
    jobs = []
    for job in RunDir.jobs_under(sweep_dir):
        job_dir, overrides, result = job.path, job.read_overrides(), job.read_result()
        job = Job(name=job_dir.relative_to(sweep_dir).as_posix(), overrides=overrides, ok=result is not None)
        if result is not None:
            job.val_acc = result.val.acc if result.val else None
            job.test_acc = result.test.acc if result.test else None
            job.seconds = result.wall_time_s
        jobs.append(job)
    return sorted(jobs, key=lambda j: job_sort_key(Path(j.name)))


def group_jobs(jobs: list[Job]) -> list[Group]:
    """Jobs grouped by all their overrides but ``seed``, in order of first appearance."""
    groups: dict[tuple[str, ...], Group] = {}
    for job in jobs:
        key = tuple(o for o in job.overrides if override_key(o) != SEED_KEY)
        groups.setdefault(key, Group(list(key), [])).jobs.append(job)
    return list(groups.values())


def common_overrides(jobs: list[Job]) -> list[str]:
    """The overrides every job has (in the first job's order)."""
    if not jobs:
        return []
    shared = set(jobs[0].overrides).intersection(*(j.overrides for j in jobs[1:]))
    return [o for o in jobs[0].overrides if o in shared]


def rounded(override: str) -> str:
    """``"a=0.0025080851123383033"`` -> ``"a=0.002508"``: a float value to 4 significant digits, for reading."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if any(c in value for c in ".eE") else override


def label(overrides: list[str], common: list[str], short: bool = False) -> str:
    """What sets a job apart: its overrides less those common to all jobs (``short``: floats rounded)."""
    kept = [rounded(o) if short else o for o in overrides if o not in common]
    return " ".join(kept) or "(all jobs)"


def config_label(overrides: list[str], common: list[str], short: bool = False) -> str:
    """What sets a configuration apart: the same less ``seed``."""
    return label([o for o in overrides if override_key(o) != SEED_KEY], common, short)


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def csv_text(jobs: list[Job], groups: list[Group], common: list[str]) -> str:
    """``summary.csv``: one ``kind=job`` row per job, then one ``kind=mean_std`` row per group.

    Accuracies are fractions (6 decimals), seconds with one decimal; ``*_std`` is the sample
    standard deviation (n - 1), empty for a job or a group of one; ``n`` counts jobs with metrics.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow({
            "kind": "job", "job": job.name, "config": config_label(job.overrides, common),
            "seed": job.seed, "overrides": " ".join(job.overrides), "status": "ok" if job.ok else NO_METRICS,
            "n": int(job.ok), "val_acc": fmt(job.val_acc, ".6f"), "test_acc": fmt(job.test_acc, ".6f"),
            "seconds": fmt(job.seconds, ".1f")})
    for group in groups:
        row = {"kind": "mean_std", "config": config_label(group.overrides, common),
               "seed": " ".join(j.seed for j in group.jobs), "overrides": " ".join(group.overrides),
               "status": group_status(group), "n": group.n}
        for field, spec in (("val_acc", ".6f"), ("test_acc", ".6f"), ("seconds", ".1f")):
            mean, std = group.mean_std(field)
            row[field], row[f"{field}_std"] = fmt(mean, spec), fmt(std, spec)
        writer.writerow(row)
    return out.getvalue()


def group_status(group: Group) -> str:
    missing = len(group.jobs) - group.n
    return "ok" if not missing else f"{missing} of {len(group.jobs)} jobs: {NO_METRICS}"


def mean_pm_std(group: Group, field: str, scale: float, spec: str) -> str:
    """``"76.12 ± 0.31"`` (``scale`` x mean ± std), ``"76.12"`` for one value, ``"–"`` for none."""
    mean, std = group.mean_std(field)
    if mean is None:
        return "–"
    return format(scale * mean, spec) + ("" if std is None else " ± " + format(scale * std, spec))


def markdown_text(sweep_dir: Path, jobs: list[Job], groups: list[Group], common: list[str]) -> str:
    """``summary.md``: the per-configuration table (mean ± std over seeds), the per-job table, the jobs without metrics."""
    lines = [f"# Sweep summary: {sweep_dir.name}", "",
             f"{len(jobs)} jobs, {sum(j.ok for j in jobs)} with `metrics.json`. "
             f"Common to all jobs: {' '.join(f'`{o}`' for o in common) or 'nothing'}.", "",
             "Accuracy in %: **val** on the held-out training images (`data.val_size`; the score sweepers optimise), "
             "**test** on the test set. Mean ± sample standard deviation (n - 1) over the jobs that differ only in "
             "`seed`; n counts the jobs with `metrics.json`. Seconds: each job's wall time inside `train.py`.", ""]
    scored = [g for g in groups if g.mean_std("val_acc")[0] is not None]
    if len(scored) > 1:
        best = max(scored, key=lambda g: g.mean_std("val_acc")[0])
        lines += [f"Best on val: `{config_label(best.overrides, common, short=True)}`, val "
                  f"{mean_pm_std(best, 'val_acc', 100, '.2f')} %, test {mean_pm_std(best, 'test_acc', 100, '.2f')} % "
                  f"(n = {best.n}).", ""]
    if any(len(g.jobs) > 1 for g in groups):  # else it would repeat the per-job table
        lines += ["## Per configuration (all overrides but `seed`)", "",
                  "| configuration | n | val acc (%) | test acc (%) | seconds |", "|---|---:|---:|---:|---:|"]
        for group in groups:
            lines.append(f"| `{config_label(group.overrides, common, short=True)}` | {group.n} | "
                         f"{mean_pm_std(group, 'val_acc', 100, '.2f')} | {mean_pm_std(group, 'test_acc', 100, '.2f')} | "
                         f"{mean_pm_std(group, 'seconds', 1, '.0f')} |")
        lines.append("")
    lines += ["## Per job", "", "| job | overrides | val acc (%) | test acc (%) | seconds |", "|---|---|---:|---:|---:|"]
    for job in jobs:
        single = Group(job.overrides, [job])
        lines.append(f"| {job.name} | `{label(job.overrides, common, short=True)}` | {mean_pm_std(single, 'val_acc', 100, '.2f')} | "
                     f"{mean_pm_std(single, 'test_acc', 100, '.2f')} | {mean_pm_std(single, 'seconds', 1, '.0f')} |")
    missing = [j for j in jobs if not j.ok]
    if missing:
        lines += ["", "## Jobs without metrics.json (failed or unfinished; see their train.log)", ""]
        lines += [f"- {j.name}: `{label(j.overrides, common, short=True)}`" for j in missing]
    return "\n".join(lines) + "\n"


def save_plot(groups: list[Group], common: list[str], path: Path) -> bool:
    """``summary.png``: val and test accuracy (%) per configuration, mean with ± std error bars.

    One row per configuration (``n`` in its label); returns False, writing nothing, when no job has metrics.
    """
    from matplotlib.figure import Figure

    groups = [g for g in groups if g.n]
    if not groups:
        return False
    labels = [f"{config_label(g.overrides, common, short=True)}  (n={g.n})" for g in groups]
    width = 5 + 0.06 * max(map(len, labels))  # inches: the plot and its longest label at 8 pt
    fig = Figure(figsize=(width, 1.6 + 0.45 * len(groups)), layout="constrained")
    ax = fig.subplots()
    rows = range(len(groups))
    for field, name, offset, marker in (("val_acc", "val (held out)", -0.12, "o"), ("test_acc", "test", 0.12, "s")):
        stats = [g.mean_std(field) for g in groups]
        points = [(r + offset, 100 * m, 100 * (s or 0.0)) for r, (m, s) in zip(rows, stats) if m is not None]
        if points:
            y, x, err = zip(*points)
            ax.errorbar(x, y, xerr=err, fmt=marker, capsize=4, label=name)
    ax.set_yticks(list(rows), labels, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)  # first configuration on top
    ax.set_xlabel("accuracy (%), mean ± sample std over seeds")
    ax.set_title("accuracy per configuration", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return True


def write_summary(sweep_dir: Path) -> list[Job]:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` (when a job has metrics) to ``sweep_dir``.

    Returns the jobs found.
    """
    jobs = read_jobs(sweep_dir)
    groups = group_jobs(jobs)
    common = common_overrides(jobs)
    write_atomically(sweep_dir / "summary.csv", lambda tmp: tmp.write_text(csv_text(jobs, groups, common)))
    write_atomically(sweep_dir / "summary.md", lambda tmp: tmp.write_text(markdown_text(sweep_dir, jobs, groups, common)))
    save_plot(groups, common, sweep_dir / "summary.png")
    return jobs


def sweep_dir_of(config: DictConfig) -> Path:
    """The sweep dir as an absolute path (a relative one is relative to where Hydra was started)."""
    return Path(config.hydra.runtime.cwd) / config.hydra.sweep.dir


class SweepSummary(Callback):
    """Summarise a multirun in its sweep dir as it goes: when each job starts (listed as without
    metrics until it finishes), when it ends, and at the end of the sweep. A sweep that fails or is
    stopped half-way (a job that exits, Ctrl-C) so keeps a summary that names the job it stopped in."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(sweep_dir_of(config))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(sweep_dir_of(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_dir_of(config)
        if sweep_dir.is_dir():
            write_summary(sweep_dir)


# What train.py may return to an optimising sweeper (``optimized_metric``, as in lightning-hydra-template): a score
# of the held-out split and its field in :class:`cifarlab.runs.result.HeldOutScores`; never a test-set score.
OPTIMIZABLE = {"val/acc": "acc", "val/loss": "loss"}


def check_optimized_metric(name: str) -> None:
    """Refuse an ``optimized_metric`` that is not a held-out score (:data:`OPTIMIZABLE`).

    Raises:
        ConfigError: another name, such as ``test/acc`` (a sweep would choose on the test set).
    """
    if name not in OPTIMIZABLE:
        raise ConfigError(f"optimized_metric={name} is not a score of the held-out split: use one of "
                          f"{', '.join(OPTIMIZABLE)} (a sweep must never choose on the test set)")


def objective(result: TrainResult | None, name: str) -> float | None:
    """The ``optimized_metric`` ``name`` of a finished run (a fraction for ``val/acc``), which train.py returns to
    Hydra's sweepers; None without a result (``lr_find=only``) or a held-out split (``data.val_size=0``).

    Raises:
        ConfigError: see :func:`check_optimized_metric`.
    """
    check_optimized_metric(name)
    return None if result is None or result.val is None else getattr(result.val, OPTIMIZABLE[name])


class RequireHeldOutSplit(Callback):
    """Refuse to start an optimising sweep (a sweeper with a ``direction``, e.g.
    ``hparams_search=optuna``) when ``data.val_size=0``: ``train.py`` then returns nothing, as the
    only other score is the test set's, and choosing hyperparameters on it is selection on the test set."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with exit_on_user_error():
            check_optimized_metric(config.get("optimized_metric", "val/acc"))
        if "direction" in config.hydra.sweeper and config.data.val_size == 0:
            with exit_on_user_error():
                raise ConfigError(
                    f"hydra.sweeper ({config.hydra.runtime.choices.get('hydra/sweeper')}) optimises the held-out "
                    f"score optimized_metric={config.get('optimized_metric')}, but data.val_size=0 holds no images out (validation "
                    "would be the test set): set data.val_size, e.g. data.val_size=5000")
