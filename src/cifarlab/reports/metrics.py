"""Test-set metrics from logits, with torchmetrics."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torchmetrics.functional.classification as tmf


def classification_report(logits: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """Accuracy, per-class precision and recall (fractions in [0, 1]; a class's recall is its
    accuracy) and the confusion matrix (C, C) of counts, rows the true class.

    Args:
        logits: (N, C) float32; labels: (N,) int64 in 0..C-1.
    """
    c = len(class_names)
    preds = logits.argmax(1)
    precision = tmf.multiclass_precision(preds, labels, c, average=None)
    recall = tmf.multiclass_recall(preds, labels, c, average=None)
    return {
        "acc": float(tmf.multiclass_accuracy(preds, labels, c, average="micro")),
        "per_class": {name: {"precision": float(p), "recall": float(r)}
                      for name, p, r in zip(class_names, precision, recall)},
        "confusion_matrix": tmf.multiclass_confusion_matrix(preds, labels, c).tolist(),
    }
