"""Evaluation reports for ``evaluate.py``: test metrics, confusion matrix, misclassified
images, GradCAM overlays, training curves, and the data figures (samples, augmentations)."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import lightning as L
import numpy as np
import torch
import torchmetrics.functional.classification as tmf
from PIL import Image
from torch.utils.data import DataLoader

from cifarlab.checkpoints import load_classifier, read_checkpoint, resolve_checkpoint
from cifarlab.data import CIFAR10DataModule, ImageDataset, load_cifar10
from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.explain import default_target_layer, denormalise, find_layer, gradcam, misclassified, overlay
from cifarlab.module import ImageClassifier
from cifarlab.plotting import save_confusion_matrix, save_curves, save_grid, upscale
from cifarlab.data.augment import build_eval_transform, normalise_and_tensor

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    """A checkpoint with what evaluation needs: the model (fp32, eval mode), its file, the run dir
    (the folder above ``checkpoints/``) and the data module's saved hyperparameters."""

    model: ImageClassifier
    ckpt_path: Path
    run_dir: Path
    data_hparams: dict


def load_run(ckpt_path: str | Path, expected_target: str | None = None) -> LoadedRun:
    """Load a checkpoint (or the one a run dir tested).

    Args:
        expected_target: the ``_target_`` of ``model=...`` if the user named one; a checkpoint
            of another architecture is then an error.

    Raises:
        CifarlabError: missing, unreadable or foreign checkpoint; architecture mismatch.
    """
    path = resolve_checkpoint(ckpt_path)
    ckpt = read_checkpoint(path)
    target = ckpt["hyper_parameters"]["net"]["_target_"]
    if expected_target and expected_target != target:
        raise CifarlabError(f"{path} holds a {target.rsplit('.', 1)[-1]}, not the requested "
                            f"{expected_target.rsplit('.', 1)[-1]}: drop the model= override or pick a "
                            f"checkpoint of that architecture")
    return LoadedRun(load_classifier(path), path, path.parent.parent, ckpt.get("datamodule_hyper_parameters", {}))


def load_test_set(run: LoadedRun, data_root: str | None) -> tuple[ImageDataset, list[str]]:
    """The 10,000 test images normalised with the statistics the model was trained with."""
    root = data_root or run.data_hparams.get("root")
    if root is None:
        raise ConfigError("the checkpoint records no data.root: pass data_root=<folder holding cifar-10-batches-py>")
    arrays = load_cifar10(root)
    hp = run.model.hparams
    return ImageDataset(arrays.test_images, arrays.test_labels, build_eval_transform(hp.mean, hp.std)), arrays.class_names


def predict_logits(model: ImageClassifier, dataset: ImageDataset, batch_size: int, precision: str,
                   flip: bool = False) -> tuple[torch.Tensor, float]:
    """Logits (N, C) float32 of the whole dataset, through Lightning with ``precision`` (use the
    training run's, so the accuracy equals the one ``train.py`` reported), and the seconds taken.
    ``flip`` mirrors every image first (test-time augmentation)."""
    if flip:
        hp = model.hparams
        dataset = ImageDataset(dataset.images, dataset.labels,
                               A.Compose([A.HorizontalFlip(p=1.0)] + normalise_and_tensor(hp.mean, hp.std)))
    trainer = L.Trainer(accelerator="auto", devices=1, precision=precision, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    start = time.perf_counter()
    batches = trainer.predict(model, DataLoader(dataset, batch_size=batch_size, shuffle=False))
    return torch.cat(batches).float().cpu(), time.perf_counter() - start


def classification_report(model: ImageClassifier, logits: torch.Tensor, labels: torch.Tensor,
                          class_names: list[str]) -> dict:
    """Accuracy (fraction), the training loss (``model.criterion``, label smoothing included),
    per-class precision / recall / accuracy (torchmetrics), the confusion matrix (C, C) counts."""
    c = len(class_names)
    precision = tmf.multiclass_precision(logits, labels, c, average=None)
    recall = tmf.multiclass_recall(logits, labels, c, average=None)
    per_class_acc = tmf.multiclass_accuracy(logits, labels, c, average=None)
    return {
        "acc": float(tmf.multiclass_accuracy(logits, labels, c, average="micro")),
        "loss": float(model.criterion(logits, labels)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "accuracy": float(a)}
                      for name, p, r, a in zip(class_names, precision, recall, per_class_acc)},
        "confusion_matrix": tmf.multiclass_confusion_matrix(logits, labels, c).tolist(),
    }


def captions(indices: np.ndarray, labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> list[str]:
    """"#index true: cat\\npred: dog (87%)" for each misclassified image."""
    return [f"#{i} true: {class_names[labels[i]]}\npred: {class_names[probs[i].argmax()]} ({100 * probs[i].max():.0f}%)"
            for i in indices]


def write_misclassified(out: Path, dataset: ImageDataset, indices: np.ndarray, probs: np.ndarray,
                        class_names: list[str], size: int) -> None:
    """``misclassified.png`` (grid) and ``misclassified/<index>_<true>_<pred>.png`` (size x size each)."""
    images = upscale(dataset.images[indices], size)
    save_grid(images, captions(indices, dataset.labels, probs, class_names), out / "misclassified.png",
              title=f"First {len(indices)} misclassified test images")
    folder = out / "misclassified"
    folder.mkdir(exist_ok=True)
    for i, image in zip(indices, images):
        name = f"{i}_{class_names[dataset.labels[i]]}_{class_names[probs[i].argmax()]}.png"
        Image.fromarray(image).save(folder / name)


def write_gradcam(out: Path, model: ImageClassifier, dataset: ImageDataset, indices: np.ndarray, probs: np.ndarray,
                  class_names: list[str], target_layer: str, target: str, image_weight: float, size: int) -> np.ndarray:
    """``gradcam_misclassified.png``: GradCAM of ``target`` (predicted | true) class over each image.
    Returns the maps (N, 32, 32) float32 in [0, 1]."""
    images = torch.stack([dataset[i][0] for i in indices])
    targets = probs[indices].argmax(1) if target == "predicted" else dataset.labels[indices]
    maps = gradcam(model.net, images, target_layer, targets=[int(t) for t in targets])
    rgb = upscale(denormalise(images, model.hparams.mean, model.hparams.std), size).astype(np.float32) / 255
    overlays = np.stack([overlay(image, cam, image_weight) for image, cam in zip(rgb, maps)])
    save_grid(overlays, captions(indices, dataset.labels, probs, class_names), out / "gradcam_misclassified.png",
              title=f"GradCAM of the {target} class at {target_layer}")
    return maps


def read_scalars(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar logged to the run's TensorBoard events: name -> (steps, values)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for events in sorted(run_dir.glob("tensorboard/**/events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            points = acc.Scalars(tag)
            series[tag] = (np.array([p.step for p in points]), np.array([p.value for p in points]))
    return series


def write_data_figures(out: Path, datamodule: CIFAR10DataModule, count: int, size: int) -> None:
    """``samples.png``: the first ``count`` training images with labels; ``augmentations.png``:
    the same images after the training augmentation (denormalised; ``data.seed`` fixes which)."""
    dataset, names = datamodule.train_set, datamodule.class_names
    count = min(count, len(dataset))
    titles = [names[int(y)] for y in dataset.labels[:count]]
    save_grid(upscale(dataset.images[:count], size), titles, out / "samples.png", title="Training images")
    augmented = torch.stack([dataset[i][0] for i in range(count)])
    rgb = upscale(denormalise(augmented, datamodule.mean, datamodule.std), size)
    save_grid(rgb, titles, out / "augmentations.png", title="The same images after the training augmentation")


def evaluate_checkpoint(ckpt_path: str, out: Path, *, data_root: str | None, batch_size: int, precision: str,
                        num_misclassified: int, target_layer: str | None, image_weight: float, target: str,
                        tta: str, size: int, expected_target: str | None = None) -> dict:
    """Evaluate a checkpoint on the test set and write the report into ``out``.

    Every argument is checked before any figure is written; ``metrics.json`` is written last,
    so a folder without it is not a finished report.

    Returns the contents of ``metrics.json`` (accuracies as fractions, ``wall_time_s`` in
    seconds, ``images_per_s`` test images per second of inference).

    Raises:
        CifarlabError: bad checkpoint, architecture mismatch, unknown target layer,
            num_misclassified <= 0 or more than there are, bad target / tta / image_weight.
    """
    start = time.perf_counter()
    if num_misclassified <= 0:
        raise ConfigError(f"eval.num_misclassified={num_misclassified} must be at least 1")
    if target not in ("predicted", "true"):
        raise ConfigError(f"eval.gradcam.target={target!r} must be 'predicted' or 'true'")
    if tta not in ("none", "flip"):
        raise ConfigError(f"eval.tta={tta!r} must be 'none' or 'flip'")
    if not 0.0 <= image_weight <= 1.0:
        raise ConfigError(f"eval.gradcam.image_weight={image_weight} must be in [0, 1]")
    run = load_run(ckpt_path, expected_target)
    layer = target_layer or default_target_layer(run.model.net)
    find_layer(run.model.net, layer)
    dataset, class_names = load_test_set(run, data_root)
    labels = torch.from_numpy(dataset.labels)
    logits, seconds = predict_logits(run.model, dataset, batch_size, precision)
    probs = torch.softmax(logits, dim=1).numpy()
    wrong = misclassified(probs, dataset.labels)
    if num_misclassified > len(wrong):
        raise ConfigError(f"eval.num_misclassified={num_misclassified} but only {len(wrong)} test images are "
                          f"misclassified: ask for at most {len(wrong)}")
    report = classification_report(run.model, logits, labels, class_names)
    out.mkdir(parents=True, exist_ok=True)
    save_confusion_matrix(np.array(report.pop("confusion_matrix")), class_names, out / "confusion_matrix.png")
    shown = wrong[:num_misclassified]
    write_misclassified(out, dataset, shown, probs, class_names, size)
    write_gradcam(out, run.model, dataset, shown, probs, class_names, layer, target, image_weight, size)
    scalars = read_scalars(run.run_dir)
    if scalars:
        save_curves(scalars, out / "curves.png")
    else:
        log.warning("no TensorBoard events under %s/tensorboard: curves.png not written", run.run_dir)
    results = {
        "checkpoint": str(run.ckpt_path),
        "test": {"acc": report["acc"], "loss": report["loss"], "images": len(dataset)},
        "per_class": report["per_class"],
        "num_misclassified": int(len(wrong)),
        "shown_misclassified": [int(i) for i in shown],
        "gradcam": {"target_layer": layer, "target": target, "image_weight": image_weight},
        "precision": precision,
        "images_per_s": len(dataset) / seconds,
        "inference_seconds": seconds,
    }
    if tta == "flip":
        flipped, _ = predict_logits(run.model, dataset, batch_size, precision, flip=True)
        tta_probs = (probs + torch.softmax(flipped, dim=1).numpy()) / 2
        results["test"]["acc_tta_flip"] = float((tta_probs.argmax(1) == dataset.labels).mean())
    results["wall_time_s"] = time.perf_counter() - start
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
