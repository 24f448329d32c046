"""``compare.py``: is run B better than run A on the test set, or seed group B than seed group A?

Each side is a ``train.py`` run dir, a sweep dir whose jobs differ only in ``seed``, or a list of
run dirs. The paired tests need each image's prediction by both sides; they compare the *first*
run of each side (the first job of a sweep, the first of a list): two trained models, on the same
test images. Seed groups (two or more runs on each side) are also compared by Welch's t-test over
their runs' test accuracies (``metrics.json``): the recipes rather than two of their models; the
verdict is then Welch's.

A run's test predictions come from ``evaluate.py``'s ``predictions.npz``: the output dir given as
``a_predictions`` / ``b_predictions``, else ``<run>/eval/`` when it holds one (``python evaluate.py
ckpt_path=<run> hydra.run.dir=<run>/eval``); either must be a report of the checkpoint the run
tested (its sha256). Without one they are predicted here through :meth:`TrainedRun.predict`, and the
report says so.

It is one module because reading the sides, choosing their predictions, the gallery and the Markdown
make one report; the statistics themselves are in :mod:`cifarlab.reports.paired`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchmetrics.functional.classification as tmf
from rich.console import Console

from cifarlab.errors import CifarlabError, ConfigError, DataError
from cifarlab.reports.config import CompareConfig
from cifarlab.reports.config_diff import config_diff, describe
from cifarlab.reports.evaluate import read_report
from cifarlab.reports.figures import save_grid, upscale
from cifarlab.reports.paired import CONFIDENCE, bootstrap_delta, mcnemar, verdict, welch
from cifarlab.runs.run import TrainedRun
from cifarlab.runs.rundir import RunDir, RunRecord, write_json_atomic
from cifarlab.runs.sweeps import config_label, group_jobs, read_jobs

log = logging.getLogger(__name__)

SCHEMA = "cifarlab.compare/1"
EVAL_SUBDIR = "eval"  # <run>/eval/: where an evaluate.py report of the run is looked for
GALLERY = "disagreements.png"


@dataclass
class Side:
    """One side of a comparison: ``name`` (``"A"`` | ``"B"``), what was given, its runs in order."""

    name: str
    given: str | list[str]
    runs: list[RunRecord]

    @property
    def key(self) -> str:
        return self.name.lower()

    def accuracies(self) -> list[float]:
        """Each run's test accuracy from its ``metrics.json`` (fractions).

        Raises:
            CifarlabError: a run without a test accuracy (unfinished, or trained with ``test=false``).
        """
        accs = []
        for run in self.runs:
            acc = run.metrics.test.acc if run.metrics and run.metrics.test else None
            if acc is None:
                raise CifarlabError(f"{run.run_dir} has no test accuracy in metrics.json (unfinished, or trained "
                                    f"with test=false): drop it from {self.key}=, or evaluate it with evaluate.py")
            accs.append(float(acc))
        return accs


def read_run(path: str | Path, key: str) -> RunRecord:
    """The run dir ``path`` of setting ``key``.

    Raises:
        CifarlabError: not a folder holding ``config.yaml`` or ``metrics.json``.
    """
    record = RunDir(path).read_record()
    if record.config is None and record.metrics is None:
        raise CifarlabError(f"{key}={path} is not a train.py run dir (no config.yaml or metrics.json in it): give "
                            "outputs/<task>/runs/<run>, a sweep dir of seeds, or a list of run dirs [<run>,<run>]")
    return record


def read_side(name: str, given: Any) -> Side:
    """Side ``name`` from its setting: a run dir, a sweep dir of seeds, or a list of run dirs.

    Raises:
        CifarlabError: a path that is no run or sweep dir; a sweep of several configurations or with
            unfinished jobs; runs of a group that differ in more than their seed.
    """
    key = name.lower()
    if isinstance(given, (list, tuple)):
        side = Side(name, [str(g) for g in given], [read_run(Path(str(g)), key) for g in given])
    else:
        path = Path(str(given)).expanduser()
        if not path.is_dir():
            raise CifarlabError(f"{key}={given} is not a folder: give a train.py run dir, a sweep dir of seeds, "
                                "or a list of run dirs [<run>,<run>]")
        layout = RunDir(path)
        if layout.config.is_file() or layout.finished:
            return Side(name, str(given), [read_run(path, key)])
        jobs = read_jobs(path)
        if not jobs:
            raise CifarlabError(f"{key}={given} holds neither a run (config.yaml, metrics.json) nor the jobs of a "
                                "multirun (<job>/.hydra/overrides.yaml): give a run dir or a sweep dir")
        groups = group_jobs(jobs)
        if len(groups) > 1:
            labels = "; ".join(config_label(g.overrides, []) for g in groups)
            raise CifarlabError(f"{key}={given} holds {len(groups)} configurations ({labels}), not one seed group: "
                                f"give the jobs of one as a list, {key}=[{given}/{jobs[0].name},...]")
        unfinished = [j.name for j in jobs if not j.ok]
        if unfinished:
            raise CifarlabError(f"jobs {', '.join(unfinished)} of {key}={given} have no metrics.json (failed or "
                                f"unfinished): give the finished ones as a list, {key}=[{given}/<job>,...]")
        side = Side(name, str(given), [read_run(path / j.name, key) for j in jobs])
    for other in side.runs[1:]:
        diff = config_diff(side.runs[0].config, other.config, side.runs[0].choices, other.choices, ignore_seed=True)
        if diff:
            first = next(iter({**diff.choices, **diff.keys}))
            raise CifarlabError(f"the runs of {key}= differ in more than their seed ({first} of {other.run_dir} "
                                f"differs from {side.runs[0].run_dir}): a seed group shares every other setting")
    return side


def side_predictions(run: TrainedRun, given: str | None, key: str, images: np.ndarray, labels: np.ndarray,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``run``'s test predictions: (N,) int64 predicted classes, (N,) int64 their test-set indices,
    and where they came from (see the module docstring).

    Raises:
        DataError: a given or found eval dir that is not a report of this run's checkpoint.
    """
    eval_dir = Path(given).expanduser() if given else run.run_dir / EVAL_SUBDIR if run.run_dir else None
    if eval_dir is not None and eval_dir.is_file() and eval_dir.name == "predictions.npz":
        eval_dir = eval_dir.parent
    if given:
        _, logits, indices = read_report(eval_dir, run, labels, f"{key}={given}",
                                         f"leave {key} unset to predict the test set here")
        return logits.argmax(1).numpy(), indices, f"evaluate.py's predictions.npz in {eval_dir}"
    if eval_dir is not None and (eval_dir / "predictions.npz").is_file():
        _, logits, indices = read_report(eval_dir, run, labels, f"{eval_dir} (found in the run dir)",
                                         f"give {key}=<an evaluate.py report of it>")
        return logits.argmax(1).numpy(), indices, f"evaluate.py's predictions.npz in {eval_dir}"
    preds = run.predict(images, batch_size).argmax(1).numpy()
    return preds, np.arange(len(labels)), ("predicted here with TrainedRun.predict (no evaluate.py report given as "
                                           f"{key}, none in the run's {EVAL_SUBDIR}/)")


def per_class_recall(preds_a: np.ndarray, preds_b: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """{class: {"a", "b", "delta"}}: each side's recall of the class (its accuracy on the class's
    images, a fraction) and B's minus A's, of (N,) predicted classes and (N,) labels."""
    c, target = len(class_names), torch.from_numpy(labels)
    recall = [tmf.multiclass_recall(torch.from_numpy(p), target, c, average=None).tolist() for p in (preds_a, preds_b)]
    return {name: {"a": ra, "b": rb, "delta": rb - ra} for name, ra, rb in zip(class_names, *recall)}


def save_gallery(images: np.ndarray, labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray,
                 indices: np.ndarray, class_names: list[str], count: int, path: Path) -> list[int]:
    """The first ``count`` test images (N, 32, 32, 3) uint8 where A's and B's predictions (N,) differ,
    in test-set order, as a captioned grid PNG (label, A's prediction, B's prediction); returns their
    test-set indices, writing nothing when the two agree everywhere."""
    rows = np.flatnonzero(preds_a != preds_b)
    shown = rows[:count]
    if not len(shown):
        return []
    captions = [f"#{indices[r]} label: {class_names[labels[r]]}\nA: {class_names[preds_a[r]]}\n"
                f"B: {class_names[preds_b[r]]}" for r in shown]
    save_grid(upscale(images[shown], 96), captions, path, cell_inches=1.6,
              title=f"{len(shown)} of the {len(rows)} test images where A and B disagree (test-set order)")
    return [int(indices[r]) for r in shown]


def compare(cfg: CompareConfig) -> dict:
    """``compare.py``: compare side ``cfg.a`` with side ``cfg.b``; write ``compare.json`` and
    ``compare.md`` (and ``disagreements.png``) into ``cfg.paths.output_dir``; returns ``compare.json``'s
    contents (schema ``cifarlab.compare/1``, docs/compare.md).

    Raises:
        CifarlabError: see :func:`read_side`, :func:`side_predictions`, :class:`TrainedRun`; runs of other
            classes; predictions of different test images.
    """
    a, b = read_side("A", cfg.a), read_side("B", cfg.b)
    groups = len(a.runs) > 1 and len(b.runs) > 1
    welch_test = welch(a.accuracies(), b.accuracies()) if groups else None
    diff = config_diff(a.runs[0].config, b.runs[0].config, a.runs[0].choices, b.runs[0].choices, ignore_seed=groups)
    run_a, run_b = (TrainedRun(s.runs[0].run_dir, data_root=cfg.data.root, precision=cfg.precision) for s in (a, b))
    if run_a.class_names != run_b.class_names:
        raise ConfigError(f"A's and B's classes differ ({run_a.class_names} vs {run_b.class_names}): compare "
                          "runs trained on the same dataset")
    images, labels = run_a.test_set()
    preds_a, indices, source_a = side_predictions(run_a, cfg.a_predictions, "a_predictions", images, labels,
                                                  cfg.batch_size)
    preds_b, indices_b, source_b = side_predictions(run_b, cfg.b_predictions, "b_predictions", images, labels,
                                                    cfg.batch_size)
    if not np.array_equal(indices, indices_b):
        raise DataError("A's and B's predictions are of different test images (their predictions.npz indices "
                        "differ): evaluate both on the whole test set")
    labels, images = labels[indices], images[indices]
    paired = mcnemar(preds_a == labels, preds_b == labels)
    low, high = bootstrap_delta(preds_a == labels, preds_b == labels, cfg.bootstrap.resamples, cfg.bootstrap.seed)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shown = save_gallery(images, labels, preds_a, preds_b, indices, run_a.class_names, cfg.gallery_size, out / GALLERY)
    if welch_test is not None:
        said = verdict(welch_test.delta, welch_test.p_value, f"Welch's t-test over seeds, n = {len(a.runs)} and "
                       f"{len(b.runs)}", cfg.alpha)
    else:
        said = verdict(paired.delta, paired.p_value, "exact McNemar", cfg.alpha)
    results = {
        "schema": SCHEMA,
        "alpha": cfg.alpha,
        "verdict": said,
        "a": side_dict(a, run_a, source_a),
        "b": side_dict(b, run_b, source_b),
        "config_diff": diff.to_dict(),
        "paired": paired.to_dict() | {
            "test": "exact McNemar: two-sided binomial test of a_only vs b_only at 1/2",
            "disagree": int((preds_a != preds_b).sum()),
            "bootstrap": {"low": low, "high": high, "confidence": CONFIDENCE, "resamples": cfg.bootstrap.resamples,
                          "seed": cfg.bootstrap.seed, "method": "BCa, paired (test images resampled)"},
            "p_value_below_alpha": paired.p_value < cfg.alpha,
            "verdict": verdict(paired.delta, paired.p_value, "exact McNemar", cfg.alpha)},
        "seeds": None if welch_test is None else {
            "a": {"acc": welch_test.acc_a, "mean": welch_test.mean_a, "std": welch_test.std_a},
            "b": {"acc": welch_test.acc_b, "mean": welch_test.mean_b, "std": welch_test.std_b},
            "delta": welch_test.delta, **{k: finite(getattr(welch_test, k)) for k in ("t", "df", "p_value")},
            "test": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False), B minus A"},
        "per_class_recall": per_class_recall(preds_a, preds_b, labels, run_a.class_names),
        "gallery": {"file": GALLERY if shown else None, "shown": shown},
    }
    write_json_atomic(out / "compare.json", results)
    (out / "compare.md").write_text(markdown(results))
    Console().print(f"{said}\nreport written to {out}", highlight=False, markup=False)
    return results


def finite(value: float) -> float | None:
    """``value``, or None when not finite (Welch's test of groups without variance): JSON has no NaN."""
    return value if np.isfinite(value) else None


def side_dict(side: Side, run: TrainedRun, source: str) -> dict:
    """A side in ``compare.json``: what was given, its run dirs, and its first run (the paired one)."""
    return {"given": side.given, "runs": [str(r.run_dir) for r in side.runs],
            "paired_run": str(side.runs[0].run_dir), "checkpoint_sha256": run.sha256, "model": run.net_name,
            "predictions": source}


def cell(sides: dict, side: str) -> str:
    """A markdown table cell of a side's value in a config difference."""
    return "(absent)" if side not in sides else "`" + describe(sides[side]).replace("|", "\\|") + "`"


def markdown(results: dict) -> str:
    """``compare.md``: the verdict, the config difference, the paired test, the seeds, per-class recall, the gallery."""
    a, b, paired, diff = results["a"], results["b"], results["paired"], results["config_diff"]
    boot = paired["bootstrap"]
    lines = ["# Comparison: A vs B", "",
             f"- **A**: `{a['given']}` ({len(a['runs'])} run{'s' * (len(a['runs']) > 1)}, {a['model']})",
             f"- **B**: `{b['given']}` ({len(b['runs'])} run{'s' * (len(b['runs']) > 1)}, {b['model']})", "",
             f"**Verdict: {results['verdict']}.**", "",
             "## What differs in the config", ""]
    if diff["choices"] or diff["keys"]:
        lines += ["| | A | B |", "|---|---|---|"]
        lines += [f"| choice `{g}` | {cell(v, 'a')} | {cell(v, 'b')} |" for g, v in diff["choices"].items()]
        lines += [f"| `{k}` | {cell(v, 'a')} | {cell(v, 'b')} |" for k, v in diff["keys"].items()]
    else:
        lines.append("Nothing: the two configs are the same.")
    lines += ["", f"Left out: {', '.join(diff['ignored'])}."] + [f"Note: {n}." for n in diff["notes"]]
    lines += ["", "## Test accuracy, paired (exact McNemar)", "",
              f"The first run of each side on the same {paired['images']:,} test images: A `{a['paired_run']}`, "
              f"B `{b['paired_run']}`.", "",
              f"- A's predictions: {a['predictions']}", f"- B's predictions: {b['predictions']}", "",
              "| | A | B | B − A |", "|---|---:|---:|---:|",
              f"| test accuracy | {100 * paired['acc_a']:.2f} % | {100 * paired['acc_b']:.2f} % | "
              f"{100 * paired['delta']:+.2f} points |", "",
              f"{100 * boot['confidence']:.0f} % bootstrap interval of B − A: [{100 * boot['low']:+.2f}, "
              f"{100 * boot['high']:+.2f}] points ({boot['resamples']} resamples of the test images, paired, "
              f"seed {boot['seed']}, BCa).", "",
              "| | B right | B wrong |", "|---|---:|---:|",
              f"| **A right** | {paired['both_right']:,} | {paired['a_only']:,} |",
              f"| **A wrong** | {paired['b_only']:,} | {paired['both_wrong']:,} |", "",
              f"Exact McNemar (two-sided binomial test of the {paired['a_only'] + paired['b_only']:,} discordant "
              f"images at 1/2): p = {paired['p_value']:.3g}; {paired['verdict']}."]
    seeds = results["seeds"]
    if seeds:
        lines += ["", "## Seeds (Welch's t-test)", "",
                  "Each run's test accuracy from its metrics.json; mean ± sample standard deviation (n − 1).", "",
                  "| | n | test accuracy (%) | runs (%) |", "|---|---:|---:|---|"]
        for name in ("a", "b"):
            s = seeds[name]
            lines.append(f"| {name.upper()} | {len(s['acc'])} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} | "
                         f"{', '.join(f'{100 * x:.2f}' for x in s['acc'])} |")
        if seeds["t"] is None or seeds["p_value"] is None:
            lines += ["", f"B − A = {100 * seeds['delta']:+.2f} points; t undefined: no run's accuracy differs "
                          "from its group's mean."]
        else:
            lines += ["", f"B − A = {100 * seeds['delta']:+.2f} points; t = {seeds['t']:.3g}, "
                          f"df = {seeds['df']:.3g}, p = {seeds['p_value']:.3g}."]
    lines += ["", "## Per-class recall", "", "| class | A (%) | B (%) | B − A (points) |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {100 * r['a']:.2f} | {100 * r['b']:.2f} | {100 * r['delta']:+.2f} |"
              for name, r in results["per_class_recall"].items()]
    gallery = results["gallery"]
    lines += ["", "## Where A and B disagree", ""]
    lines.append(f"{paired['disagree']:,} test images get different predictions; the first {len(gallery['shown'])}, "
                 f"captioned with the label and each side's prediction:\n\n![disagreements]({gallery['file']})"
                 if gallery["file"] else "Nowhere: A and B predict the same class for every test image.")
    return "\n".join(lines) + "\n"
