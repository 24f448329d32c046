"""The test report of a trained run (``evaluate.py``): predictions, metrics, calibration,
robustness to corruptions, confusion matrix, misclassified images with their GradCAM, training curves."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from PIL import Image
from rich.console import Console
from rich.table import Table

from cifarlab.errors import ConfigError, DataError
from cifarlab.reports.calibration import calibration_summary, calibration_with_tta, save_reliability_diagram
from cifarlab.reports.config import EvalConfig, ReportSettings, Target
from cifarlab.runs.result import EvalResult, EvaluatedCheckpoint, GradcamShown, Misclassified, TestAccuracy
from cifarlab.runs.result import EVAL_SCHEMA as SCHEMA
from cifarlab.reports.figures import log_images_to_tensorboard, save_confusion_matrix, save_curves, save_grid, upscale
from cifarlab.reports.gradcam import check_layer, default_target_layer, gradcam, overlay
from cifarlab.reports.metrics import classification_report
from cifarlab.reports.robustness import load_baseline, robustness_table, write_robustness
from cifarlab.reports.model_card import model_card
from cifarlab.runs.run import TrainedRun
from cifarlab.runs.rundir import MODEL_CARD, RunDir, write_json_atomic

log = logging.getLogger(__name__)

# The report's figures that also go to the run's TensorBoard (its Images tab), as eval/<name>
TENSORBOARD_FIGURES = ("confusion_matrix.png", "misclassified.png", "gradcam_misclassified.png", "reliability.png")


def caption(index: int, label: int, probs: torch.Tensor, class_names: list[str]) -> str:
    """"#12 true: cat\\npred: dog (54%)": test-set index, true class, predicted class and its probability."""
    predicted = class_names[int(probs.argmax())]
    return f"#{index} true: {class_names[label]}\npred: {predicted} ({100 * float(probs.max()):.0f}%)"


def write_report(run: TrainedRun, out: Path, settings: ReportSettings, batch_size: int = 500) -> EvalResult:
    """Predict the test set with ``run`` and write the report into ``out``.

    Everything is checked before the first file is written; ``metrics.json`` is written last,
    so a folder without it is not a finished report. Files: ``predictions.npz`` (``logits``
    (N, C) float32, ``labels`` (N,) int64, ``indices`` (N,) int64 test-set positions),
    ``confusion_matrix.png``, ``misclassified.png``, ``misclassified/<index>_<true>_<pred>.png``,
    ``gradcam_misclassified.png``, ``curves.png`` (when the run logged to TensorBoard),
    ``reliability.png``, ``robustness.png`` (unless ``settings.robustness.enabled`` is false), ``metrics.json``;
    and ``MODEL_CARD.md`` (:func:`cifarlab.reports.model_card.render_model_card`) in the run dir (in ``out`` for a
    checkpoint outside one).

    Returns what ``metrics.json`` holds, typed (:class:`~cifarlab.runs.result.EvalResult`, schema
    ``cifarlab.eval/3``, docs/eval-metrics.md): accuracies as fractions, seconds, test images per second of inference.

    Raises:
        CifarlabError: no test set (see :meth:`TrainedRun.test_set`), an unknown GradCAM layer, more
            misclassified images asked for than there are, a robustness baseline that is not a run
            of the same classes.
    """
    start = time.perf_counter()
    layer = check_layer(run.net, settings.gradcam.target_layer or default_target_layer(run.net))
    robust = settings.robustness
    baseline = load_baseline(robust.baseline, run) if robust.enabled and robust.baseline else None
    images, labels = run.test_set()
    held_out = run.held_out_set()
    predict_start = time.perf_counter()
    logits = run.predict(images, batch_size)
    seconds = time.perf_counter() - predict_start
    preds = logits.argmax(1).numpy()
    wrong = np.flatnonzero(preds != labels)
    if settings.num_misclassified > len(wrong):
        raise ConfigError(f"eval.num_misclassified={settings.num_misclassified} but only {len(wrong)} test images "
                          f"are misclassified: ask for at most {len(wrong)}")
    labels_t = torch.from_numpy(labels)
    report = classification_report(logits, labels_t, run.class_names, instantiate(run.hparams["loss"]))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "predictions.npz", logits=logits.numpy(), labels=labels, indices=np.arange(len(labels)))
    save_confusion_matrix(report["confusion_matrix"], run.class_names, out / "confusion_matrix.png")

    shown, size, names = wrong[:settings.num_misclassified], settings.image_size, run.class_names
    probs = torch.softmax(logits[shown], dim=1)
    captions = [caption(i, labels[i], p, names) for i, p in zip(shown, probs)]
    big = upscale(images[shown], size)
    save_grid(big, captions, out / "misclassified.png", title=f"First {len(shown)} misclassified test images")
    (out / "misclassified").mkdir(exist_ok=True)
    for i, image in zip(shown, big):
        Image.fromarray(image).save(out / "misclassified" / f"{i}_{names[labels[i]]}_{names[preds[i]]}.png")
    target = settings.gradcam.target
    maps = gradcam(run.model, images[shown], layer, preds[shown] if target is Target.predicted else labels[shown])
    cams = [overlay(images[i], m, settings.gradcam.image_weight, size) for i, m in zip(shown, maps)]
    save_grid(np.stack(cams), captions, out / "gradcam_misclassified.png",
              title=f"GradCAM of the {target.value} class at {layer}")
    scalars = run.scalars()
    if scalars:
        save_curves(scalars, out / "curves.png")
    else:
        log.warning("no TensorBoard events in the run dir (%s): curves.png not written", run.run_dir)

    tta = settings.tta.value if settings.tta is not None else run.hparams.get("tta", "none")
    logits_tta = None if tta == "none" else run.predict(images, batch_size, tta)
    acc_tta = None if logits_tta is None else float((logits_tta.argmax(1).numpy() == labels).mean())
    if held_out is not None:
        held_out = (run.predict(held_out[0], batch_size), None if tta == "none" else run.predict(held_out[0], batch_size, tta),
                    torch.from_numpy(held_out[1]))
    calibration = calibration_with_tta((logits, labels_t), tta, logits_tta, held_out)
    save_reliability_diagram(logits, labels_t, calibration["temperature"], out / "reliability.png")
    robustness = write_robustness(run, baseline, images, labels, robust, batch_size, out) if robust.enabled else None
    results = EvalResult(
        checkpoint=EvaluatedCheckpoint(path=str(run.ckpt_path.resolve()), sha256=run.sha256),
        model=run.net_name, data_root=str(run.data_root), precision=run.precision, device=str(run.device),
        test=TestAccuracy(images=len(labels), acc=report["acc"], loss=report["loss"], tta=tta, acc_tta=acc_tta),
        per_class=report["per_class"], confusion_matrix=report["confusion_matrix"],
        misclassified=Misclassified(count=len(wrong), shown=shown.tolist()),
        gradcam=GradcamShown(target_layer=layer, target=target.value, image_weight=settings.gradcam.image_weight),
        calibration=calibration, robustness=robustness, inference_s=seconds, images_per_s=len(labels) / seconds,
        wall_time_s=time.perf_counter() - start,
    )
    if run.run_dir and RunDir(run.run_dir).tensorboard.is_dir():
        step = run.train_metrics.global_step if run.train_metrics else 0
        figures = {f"eval/{name.removesuffix('.png')}": out / name for name in TENSORBOARD_FIGURES}
        log_images_to_tensorboard(RunDir(run.run_dir).tensorboard, figures, step)
    card = RunDir(run.run_dir).model_card if run.run_dir else out / MODEL_CARD
    figures = sorted(os.path.relpath(f, card.parent) for f in out.glob("*.png"))
    card.write_text(model_card(run, results, figures))
    write_json_atomic(out / "metrics.json", results.to_dict())
    return results


def read_report(eval_dir: Path, run: TrainedRun, test_labels: np.ndarray, what: str | None = None,
                instead: str = "leave eval_dir unset to predict the test set here",
                ) -> tuple[EvalResult, torch.Tensor, np.ndarray]:
    """An ``evaluate.py`` output dir of ``run``'s checkpoint, checked: its ``metrics.json`` (typed), and from
    ``predictions.npz`` the logits (N, C) float32 and the test-set indices (N,) int64 of its rows.

    Args:
        eval_dir: the output dir of ``evaluate.py``.
        run: the run it must be a report of (its checkpoint's sha256).
        test_labels: (N,) int64 labels of the test set, which the saved labels must match.
        what, instead: how the messages name ``eval_dir`` (default ``eval_dir=<eval_dir>``) and
            what they offer instead.

    Raises:
        DataError: no ``metrics.json`` and ``predictions.npz`` there; not a report of this schema
            or of this checkpoint; labels that differ from the test set's (another data root).
    """
    what = what or f"eval_dir={eval_dir}"
    metrics, npz = eval_dir / "metrics.json", eval_dir / "predictions.npz"
    if not (metrics.is_file() and npz.is_file()):
        raise DataError(f"{what} holds no metrics.json and predictions.npz: give the output dir of "
                        f"a finished evaluate.py run, or {instead}")
    payload = json.loads(metrics.read_text())
    if payload.get("schema") != SCHEMA or (payload.get("checkpoint") or {}).get("sha256") != run.sha256:
        raise DataError(f"{what} is not a report ({SCHEMA}) of {run.ckpt_path}: give the "
                        f"evaluate.py output of this checkpoint, or {instead}")
    with np.load(npz) as saved:
        logits, indices = torch.from_numpy(saved["logits"]), saved["indices"]
        if not np.array_equal(saved["labels"], test_labels[indices]):
            raise DataError(f"the labels in {npz} differ from those of the test set at {run.data_root}: "
                            "give the data_root that evaluate.py used")
    return EvalResult.from_dict(payload, str(metrics)), logits, indices


def print_report(results: EvalResult) -> None:
    """Per-class precision and recall as a table, the test accuracy, calibration and accuracy under
    corruption, on the console."""
    table = Table(title=f"cifarlab evaluation: {results.checkpoint.path}")
    for column in ("class", "precision", "recall"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in results.per_class.items():
        table.add_row(name, f"{100 * row['precision']:.1f} %", f"{100 * row['recall']:.1f} %")
    console = Console()
    console.print(table)
    test = results.test
    tta = f", with TTA {test.tta} {100 * test.acc_tta:.2f} %" if test.acc_tta is not None else ""
    console.print(f"test accuracy {100 * test.acc:.2f} % ({test.images} images{tta}), "
                  f"{results.misclassified.count} misclassified, {results.images_per_s:.0f} images/s "
                  f"in {results.precision} on {results.device}")
    console.print(calibration_summary(results.calibration))
    if results.robustness:
        console.print(robustness_table(results.robustness))


def evaluate(cfg: EvalConfig) -> EvalResult:
    """``evaluate.py``: the report of ``cfg.ckpt_path`` in ``cfg.paths.output_dir``; returns its metrics.

    Raises:
        CifarlabError: no ckpt_path; a checkpoint of another architecture than ``model=``; see
            :class:`TrainedRun` and :func:`write_report`.
    """
    if not cfg.ckpt_path:
        raise ConfigError("no checkpoint given: pass ckpt_path=<train.py run dir or .ckpt file>")
    run = TrainedRun(cfg.ckpt_path, data_root=cfg.data.root, precision=cfg.precision)
    asked = (cfg.model or {}).get("net")
    if asked and asked["_target_"] != run.net_target:
        raise ConfigError(f"{run.ckpt_path} holds a {run.net_name}, not the requested "
                          f"{asked['_target_'].rsplit('.', 1)[-1]}: drop the model= override or pick a "
                          "checkpoint of that architecture")
    out = Path(cfg.paths.output_dir)
    results = write_report(run, out, cfg.eval, cfg.batch_size)
    print_report(results)
    Console().print(f"report written to {out}")
    return results
