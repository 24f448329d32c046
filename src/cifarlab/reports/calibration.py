"""How far a classifier's probabilities can be trusted: ECE and MCE (torchmetrics), NLL and the
Brier score of softmax(logits); temperature scaling (Guo et al. 2017, "On Calibration of Modern
Neural Networks", ICML) fitted on a held-out split, never on the test set; the reliability diagram."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar
from torchmetrics.classification import MulticlassCalibrationError

BINS = 15  # equal-width confidence bins, Guo et al.'s choice
TEMPERATURE_RANGE = (0.05, 20.0)  # searched on a log scale; a fit at a bound is reported as is

NO_HELD_OUT = ("no temperature fitted: the run was trained with data.val_size=0, so it holds no images out and "
               "fitting on the test set would tune the probabilities on the images they are scored on; train with "
               "data.val_size=5000 to have a split to fit on")


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Calibration of softmax(``logits``) against ``labels``: logits (N, C) float, labels (N,) int64.

    Returns ``ece`` and ``mce`` (torchmetrics' ``MulticlassCalibrationError`` over :data:`BINS`
    equal-width bins of the top-1 confidence, norm ``l1`` and ``max``: the bin-weighted mean and
    the largest |accuracy - confidence|, fractions), ``nll`` (mean cross-entropy in nats, no label
    smoothing) and ``brier`` (mean over images of sum over classes of (p_k - y_k)^2, in [0, 2];
    Brier 1950).
    """
    logits, labels = logits.float(), labels.long()
    probs = torch.softmax(logits, dim=1)  # probabilities, so torchmetrics never mistakes logits in [0, 1] for them
    c = logits.shape[1]
    ece, mce = (float(MulticlassCalibrationError(num_classes=c, n_bins=BINS, norm=norm)(probs, labels))
                for norm in ("l1", "max"))
    return {
        "ece": ece,
        "mce": mce,
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float((probs - F.one_hot(labels, c)).pow(2).sum(1).mean()),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(``logits`` / T) on these (held-out)
    images: logits (N, C) float, labels (N,) int64. One scalar, so the arg-max is unchanged.

    Bounded Brent search over log T in :data:`TEMPERATURE_RANGE` (``scipy.optimize.minimize_scalar``),
    in float64.
    """
    logits, labels = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels))

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    return math.exp(minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-5}).x)


def calibration_report(test_logits: torch.Tensor, test_labels: torch.Tensor,
                       held_out: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """The ``calibration`` entry of ``metrics.json``: :func:`calibration_metrics` of the test logits
    (N, C) before and, with a ``held_out`` split (its logits (M, C) and labels (M,)), after dividing
    them by the temperature :func:`fit_temperature` fits on that split; without one, ``temperature``,
    ``after`` and ``fitted_on`` are None and ``note`` says why.
    """
    report = {"bins": BINS, "before": calibration_metrics(test_logits, test_labels),
              "temperature": None, "after": None, "fitted_on": None, "note": NO_HELD_OUT}
    if held_out is not None:
        t = fit_temperature(*held_out)
        report.update(temperature=t, after=calibration_metrics(test_logits / t, test_labels),
                      fitted_on=f"held-out validation split ({len(held_out[1])} images)",
                      note="temperature fitted on the held-out validation split (minimum NLL); "
                           "before and after are measured on the test set")
    return report


def calibration_with_tta(plain: tuple[torch.Tensor, torch.Tensor], tta: str,
                         tta_logits: torch.Tensor | None = None,
                         held_out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> dict:
    """The ``calibration`` entry of evaluate.py's ``metrics.json``: :func:`calibration_report` of the plain
    logits (``plain``: test logits (N, C), labels (N,)), with ``logits: "plain"``, and under ``tta`` the same
    report for the logits that the headline accuracy with TTA uses (``tta_logits``, (N, C)), its temperature
    fitted on the held-out split's TTA logits, or ``None`` with ``tta="none"``.

    Args:
        held_out: the held-out split's plain logits (M, C), TTA logits (M, C) (or None) and labels (M,).
    """
    test_logits, labels = plain
    report = calibration_report(test_logits, labels, None if held_out is None else (held_out[0], held_out[2]))
    report |= {"logits": "plain (no TTA)", "tta": None}
    if tta != "none" and tta_logits is not None:
        fit = None if held_out is None or held_out[1] is None else (held_out[1], held_out[2])
        report["tta"] = calibration_report(tta_logits, labels, fit) | {"logits": f"TTA {tta}, as the accuracy with TTA"}
    return report


def calibration_summary(report: dict) -> str:
    """Lines for the console from :func:`calibration_report`'s (or :func:`calibration_with_tta`'s) dict: ECE
    and NLL before and after temperature scaling, or why there is no after; with TTA, a line for its logits."""
    before, after = report["before"], report["after"]
    which = f" ({report['logits']})" if report.get("logits") else ""
    line = f"calibration on the test set{which}: ECE {100 * before['ece']:.2f} %, NLL {before['nll']:.3f}"
    if after is None:
        line = f"{line}; {report['note']}"
    else:
        line = (f"{line}; at temperature {report['temperature']:.3f}, fitted on the {report['fitted_on']}: "
                f"ECE {100 * after['ece']:.2f} %, NLL {after['nll']:.3f}")
    return line + ("\n" + calibration_summary(report["tta"]) if report.get("tta") else "")


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin (:data:`BINS` equal-width bins of the top-1 softmax probability, as
    torchmetrics bins them): accuracy, mean confidence (0 in an empty bin) and image count, each
    (BINS,) float64. sum(count * |accuracy - confidence|) / N is the ECE."""
    confidence, predicted = torch.softmax(logits.double(), dim=1).max(1)
    correct = (predicted == labels).double().numpy()
    index = np.clip(np.floor(confidence.numpy() * BINS).astype(int), 0, BINS - 1)
    count = np.bincount(index, minlength=BINS).astype(float)
    seen = np.maximum(count, 1)
    return (np.bincount(index, correct, BINS) / seen, np.bincount(index, confidence.numpy(), BINS) / seen, count)


def save_reliability_diagram(logits: torch.Tensor, labels: torch.Tensor, temperature: float | None,
                             path: Path) -> None:
    """The reliability diagram of test logits (N, C) with labels (N,): one panel as they are and,
    with a ``temperature``, one of ``logits / temperature`` beside it; a PNG 500 pixels high and 500
    wide per panel. Each bin's accuracy is a bar, the gap to its mean confidence hatched, the
    diagonal is perfect calibration, the ECE is in the panel's title."""
    panels = [("test set", logits)] + ([(f"after temperature {temperature:.2f}", logits / temperature)]
                                       if temperature else [])
    fig = Figure(figsize=(5 * len(panels), 5))
    for ax, (title, panel_logits) in zip(fig.subplots(1, len(panels), squeeze=False).ravel(), panels):
        acc, conf, count = reliability_bins(panel_logits, labels)
        shown = count > 0
        centres = (np.arange(BINS) + 0.5) / BINS
        ax.bar(centres[shown], acc[shown], width=1 / BINS, edgecolor="black", color="tab:blue", label="accuracy")
        ax.bar(centres[shown], conf[shown] - acc[shown], bottom=acc[shown], width=1 / BINS, color="none",
               edgecolor="tab:red", hatch="//", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ece = float((count * np.abs(acc - conf)).sum() / count.sum())
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
               title=f"{title}: ECE {100 * ece:.2f} %")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
