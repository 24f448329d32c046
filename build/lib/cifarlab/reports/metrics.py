"""Test-set metrics from logits, with torchmetrics."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchmetrics.functional.classification as tmf


def classification_report(logits: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                          loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict:
    """Accuracy and ``loss`` (training's criterion, label smoothing included), per-class precision
    and recall (fractions in [0, 1]; a class's recall is its accuracy), and the confusion matrix
    (C, C) of counts, rows the true class, of (N, C) float32 logits and (N,) int64 labels."""
    c = len(class_names)
    preds = logits.argmax(1)
    precision = tmf.multiclass_precision(preds, labels, c, average=None)
    recall = tmf.multiclass_recall(preds, labels, c, average=None)
    return {
        "acc": float(tmf.multiclass_accuracy(preds, labels, c, average="micro")),
        "loss": float(loss(logits, labels)),
        "per_class": {name: {"precision": float(p), "recall": float(r)}
                      for name, p, r in zip(class_names, precision, recall)},
        "confusion_matrix": tmf.multiclass_confusion_matrix(preds, labels, c).tolist(),
    }
