"""``MODEL_CARD.md`` of an evaluated run (after Mitchell et al. 2019, "Model Cards for Model
Reporting"): what the model is for, its data, accuracy (plain and TTA), per-class recall, worst
confusions, calibration, robustness, hardware, time, and how to reproduce it, from the run's
``config.yaml``, ``.hydra/overrides.yaml``, train ``metrics.json`` (with its ``provenance`` when
recorded) and the evaluation's ``metrics.json``. What was not measured says so. The card names
no absolute path: a path in a recorded command becomes ``<its last part>``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cifarlab.reports.config_diff import describe
from cifarlab.runs.run import TrainedRun

NOT_MEASURED = "not measured"
WORST_PAIRS = 5  # confusion pairs listed
ABSOLUTE_PATH = re.compile(r"(?<![\w.~<>-])/(?:[^\s/'\"=,;:]+/)*([^\s/'\"=,;:]+)/?")
EVALUATE = "python evaluate.py ckpt_path=<run dir>"


def no_absolute_paths(text: str) -> str:
    """``text`` with each absolute path replaced by ``<its last part>``:
    ``"data.root=/work/shared/data"`` -> ``"data.root=<data>"``."""
    return ABSOLUTE_PATH.sub(lambda m: f"<{m.group(1)}>", text)


def pct(value: float | None) -> str:
    """A fraction as ``"91.23 %"``, or :data:`NOT_MEASURED`."""
    return NOT_MEASURED if value is None else f"{100 * value:.2f} %"


def table(header: Sequence[str], rows: list[Sequence[object]]) -> list[str]:
    """A markdown table, first column left-aligned and the others right-aligned."""
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def figure(name: str, caption: str, figures: Sequence[str]) -> list[str]:
    """A markdown image line for the file ``name`` when one of ``figures`` (paths relative to the card) is it."""
    path = next((f for f in figures if Path(f).name == name), None)
    return ["", f"![{caption}]({path})"] if path else []


NAMES_LISTED = 20  # class names an intended-use line lists


def dataset_label(config: dict | None, train: dict | None) -> str:
    """The data a run trained on: ``CIFAR-10`` (runs that record no source), ``CIFAR-100``, or train.py's
    name of an image folder (``image folder <name>``)."""
    source = ((config or {}).get("data") or {}).get("source", "cifar10")
    named = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
    return named.get(source) or (train or {}).get("dataset") or "image folder"


def intended_use(class_names: Sequence[str], dataset: str = "CIFAR-10") -> list[str]:
    if dataset != "CIFAR-10":
        names = ", ".join(class_names[:NAMES_LISTED]) + (", …" if len(class_names) > NAMES_LISTED else "")
        return ["## Intended use", "",
                f"- **For**: research and teaching on image classification: classifying small colour images into the "
                f"{len(class_names)} classes of {dataset} ({names}), comparing training recipes, and looking at "
                "what a small convolutional network learns.",
                f"- **Out of scope**: any class outside those {len(class_names)} (every input gets one of them); "
                "images unlike the training images (larger images are reduced to a small square and lose detail); "
                "decisions about people, safety, security or money; inputs crafted to fool it; any use that needs "
                "the accuracies below to hold on another image distribution."]
    return ["## Intended use", "",
            f"- **For**: research and teaching on image classification: classifying 32 x 32 colour photographs "
            f"into the ten CIFAR-10 classes ({', '.join(class_names)}), comparing training recipes, and looking "
            "at what a small convolutional network learns (the app's GradCAM, feature maps and kernels).",
            "- **Out of scope**: any class outside those ten (every input gets one of them, however unlike they "
            "are); images unlike CIFAR-10's small centred photographs (larger images are reduced to 32 x 32 and "
            "lose detail); decisions about people, safety, security or money; inputs crafted to fool it "
            "(adversarial robustness was not measured); any use that needs the accuracies below to hold on "
            "another image distribution."]


def data_section(config: dict | None, train: dict | None, evaluation: Mapping | None) -> list[str]:
    lines = ["## Data", ""]
    checksum = ((train or {}).get("data") or {}).get("checksum")
    dataset = dataset_label(config, train)
    if dataset != "CIFAR-10":
        status = (checksum or {}).get("status", NOT_MEASURED)
        skipped = (checksum or {}).get("skipped") or []
        lines.append(f"- **Dataset**: {dataset}; checksum status {status}"
                     + (f", array fingerprint `{checksum.get('fingerprint', '')[:16]}`" if checksum else "")
                     + (f"; {len(skipped)} unreadable file(s) left out ({', '.join(skipped[:5])}"
                        + (", …" if len(skipped) > 5 else "") + ")" if skipped else "") + ".")
    elif checksum is None:
        lines.append(f"- **Dataset**: CIFAR-10; checksum status {NOT_MEASURED} (no train metrics.json).")
    elif checksum["status"] == "official":
        lines.append("- **Dataset**: CIFAR-10 (the official release: the md5 of every file matches).")
    else:
        lines.append(f"- **Dataset**: CIFAR-10 (JPEG q75 copy): the md5 of {', '.join(checksum['mismatched'])} "
                     "differs from the official release; this project's copy re-encodes the images as JPEG at "
                     f"quality 75, so accuracies are not those of the official files. Array fingerprint "
                     f"`{checksum.get('fingerprint', '')[:16]}`.")
    if train:
        held = train.get("val_size") or 0
        lines.append(f"- **Training images**: {train['train_images']:,}"
                     + (f", with {held:,} more held out for validation." if held else
                        "; no held-out validation split (data.val_size=0): validation ran on the test set, "
                        "and the tested weights are the last ones, not chosen on it."))
    data = (config or {}).get("data") or {}
    if "train_transforms" in data:
        transforms = f"`{describe(data['train_transforms'])}`" if data["train_transforms"] else "none"
        lines.append(f"- **Augmentation** (on {data.get('augment_on', 'workers')}): {transforms}.")
    images = ((evaluation or {}).get("test") or {}).get("images") or ((train or {}).get("test") or {}).get("images")
    split = "CIFAR-10's test batch" if dataset == "CIFAR-10" else "the test split"
    lines.append(f"- **Test images**: {images:,} ({split})." if images else
                 f"- **Test images**: {NOT_MEASURED}.")
    return lines


def accuracy_section(train: dict | None, evaluation: Mapping | None) -> list[str]:
    test = (evaluation or {}).get("test") or {}
    trained = (train or {}).get("test") or {}
    rows = [("test accuracy (evaluate.py)", pct(test.get("acc"))),
            (f"test accuracy with TTA {test.get('tta', 'none')} (evaluate.py)", pct(test.get("acc_tta"))),
            ("test accuracy (train.py's test)", pct(trained.get("acc"))),
            (f"test accuracy with TTA {trained.get('tta', 'none')} (train.py's test)", pct(trained.get("acc_tta"))),
            ("held-out validation accuracy", pct(((train or {}).get("val") or {}).get("acc"))),
            ("test loss (evaluate.py)", NOT_MEASURED if test.get("loss") is None else f"{test['loss']:.4f}")]
    return ["## Accuracy", "", "Top-1 accuracy on the test set; TTA: the mean logits of each image and its "
            "mirror image (`flip_translate`: also of the image shifted by one pixel).", "",
            *table(("measure", "value"), rows)]


def per_class_section(evaluation: Mapping | None) -> list[str]:
    lines = ["## Per-class recall", ""]
    per_class = (evaluation or {}).get("per_class")
    if not per_class:
        return lines + [f"Per-class recall was {NOT_MEASURED}: run `{EVALUATE}`."]
    rows = [(name, pct(r["recall"]), pct(r["precision"])) for name, r in per_class.items()]
    worst = min(per_class, key=lambda name: per_class[name]["recall"])
    return lines + ["Recall: of a class's test images, the fraction predicted as it; precision: of the images "
                    f"predicted as the class, the fraction that are. Lowest recall: **{worst}**.", "",
                    *table(("class", "recall", "precision"), rows)]


def confusion_section(evaluation: Mapping | None, figures: Sequence[str]) -> list[str]:
    lines = ["## Worst confusion pairs", ""]
    matrix = (evaluation or {}).get("confusion_matrix")
    if not matrix:
        return lines + [f"Confusions were {NOT_MEASURED}: run `{EVALUATE}`."]
    names = list(evaluation["per_class"])
    pairs = sorted(((matrix[t][p], t, p) for t in range(len(matrix)) for p in range(len(matrix)) if t != p),
                   key=lambda c: (-c[0], c[1], c[2]))[:WORST_PAIRS]
    rows = [(names[t], names[p], f"{n:,}", pct(n / max(1, sum(matrix[t])))) for n, t, p in pairs]
    return lines + [f"The {len(rows)} largest off-diagonal cells of the confusion matrix.", "",
                    *table(("true class", "predicted as", "images", "of the class"), rows),
                    *figure("confusion_matrix.png", "confusion matrix", figures)]


def calibration_section(evaluation: Mapping | None, figures: Sequence[str]) -> list[str]:
    lines = ["## Calibration", ""]
    cal = (evaluation or {}).get("calibration")
    if not cal:
        return lines + [f"Calibration was {NOT_MEASURED} (no `calibration` in the evaluation's metrics.json)."]

    def row(name: str, m: dict) -> tuple:
        return (name, pct(m["ece"]), pct(m["mce"]), f"{m['nll']:.4f}", f"{m['brier']:.4f}")
    rows = []
    for report in (cal, cal.get("tta")):  # the plain logits, then those of the accuracy with TTA
        if not report:
            continue
        name = report.get("logits", "plain (no TTA)")
        rows.append(row(f"softmax, {name}", report["before"]))
        if report.get("after"):
            rows.append(row(f"{name}, temperature-scaled (T = {report['temperature']:.3g}, fitted on "
                            f"{report.get('fitted_on')})", report["after"]))
    note = no_absolute_paths(cal["note"]) if cal.get("note") else ""
    return lines + [f"Expected and maximum calibration error over {cal['bins']} confidence bins, negative "
                    "log-likelihood and Brier score on the test set (lower is better)." + (f" {note}" if note else ""),
                    "", *table(("probabilities", "ECE", "MCE", "NLL", "Brier"), rows),
                    *figure("reliability.png", "reliability diagram", figures)]


def robustness_section(evaluation: Mapping | None, figures: Sequence[str]) -> list[str]:
    lines = ["## Robustness", ""]
    rob = (evaluation or {}).get("robustness")
    if not rob:
        return lines + [f"Robustness to corruptions was {NOT_MEASURED} (no `robustness` in the evaluation's "
                        "metrics.json)."]
    rows = [(name, *(f"{100 * a:.1f}" for a in accs), f"{100 * sum(accs) / len(accs):.1f}")
            for name, accs in rob["corruptions"].items()]
    suite = f"the {rob['suite']}" if rob.get("suite") else "corruptions"
    summary = (f"Accuracy (%) under {suite}, on {rob['images']:,} test images (seed {rob['seed']}) at severities "
               f"1 to {rob['severities']}: clean {pct(rob['clean_acc'])}, mean over corruptions and severities "
               f"{pct(rob['mean_corruption_acc'])}")
    if rob.get("relative_mce") is not None:
        summary += f", relative mCE {rob['relative_mce']:.3g} against {rob.get('baseline')}"
    header = ("corruption", *(f"severity {s}" for s in range(1, rob["severities"] + 1)), "mean")
    return lines + [summary + ".", "", *table(header, rows), *figure("robustness.png", "robustness", figures)]


def hardware_section(train: dict | None, evaluation: Mapping | None) -> list[str]:
    lines = ["## Hardware", ""]
    if train:
        device = (train.get("provenance") or {}).get("device_name") or train.get("accelerator")
        lines.append(f"- **Training**: {device}, {train.get('world_size', 1)} process(es), precision "
                     f"{train.get('precision')}.")
    else:
        lines.append(f"- **Training**: {NOT_MEASURED} (no train metrics.json).")
    if evaluation:
        lines.append(f"- **Evaluation**: {evaluation['device']}, precision {evaluation['precision']}.")
    return lines


def time_section(train: dict | None, evaluation: Mapping | None) -> list[str]:
    lines = ["## Time", ""]
    if train:
        lines.append(f"- **Training**: {train['train_seconds']:.0f} s of training epochs (epochs: {train['epochs']}, "
                     f"steps: {train['global_step']:,}, {train['images_per_s']:.0f} images/s), "
                     f"{train['wall_time_s']:.0f} s in all (fit, test, files).")
    else:
        lines.append(f"- **Training**: {NOT_MEASURED}.")
    if evaluation:
        lines.append(f"- **Evaluation**: {evaluation['inference_s']:.1f} s to predict the test set "
                     f"({evaluation['images_per_s']:.0f} images/s), {evaluation['wall_time_s']:.0f} s for the report.")
    return lines


def reproduce_section(overrides: list[str] | None, train: dict | None) -> list[str]:
    lines = ["## How to reproduce", ""]
    if overrides is None:
        lines += ["The command line's overrides were not recorded (no .hydra/overrides.yaml: the run was not "
                  "started through train.py's Hydra entry point); config.yaml in the run dir holds its whole "
                  "resolved config. Then:", ""]
    train_command = [] if overrides is None else [no_absolute_paths(" ".join(["python train.py", *overrides]))]
    lines += ["```bash", *train_command, EVALUATE, "```"]
    provenance = (train or {}).get("provenance")
    if provenance:
        dirty = " with uncommitted changes" if provenance.get("git_dirty") else ""
        versions = ", ".join(f"{k} {v}" for k, v in (provenance.get("versions") or {}).items())
        lines += ["", f"- **Code**: git commit `{provenance.get('git_sha')}`{dirty}.",
                  f"- **Libraries**: {versions or NOT_MEASURED}."]
        if provenance.get("command"):
            lines.append(f"- **Recorded command**: `{no_absolute_paths(provenance['command'])}`")
    else:
        lines += ["", f"- **Code and library versions**: {NOT_MEASURED} (no provenance in metrics.json)."]
    if train and train.get("lr_find"):
        lines.append(f"- The learning rate came from an LR range test: max_lr {train.get('max_lr'):.3g}.")
    return lines


def render_model_card(config: dict | None, train: dict | None, evaluation: Mapping | None,
                      overrides: list[str] | None = None, class_names: Sequence[str] = (), run_name: str = "",
                      figures: Sequence[str] = ()) -> str:
    """``MODEL_CARD.md`` as markdown.

    Args:
        config: the run's resolved ``config.yaml`` (None: not recorded).
        train: train.py's ``metrics.json`` (schema ``cifarlab.train/1``; its ``provenance`` when present).
        evaluation: evaluate.py's ``metrics.json`` (schema ``cifarlab.eval/3``, with ``calibration``
            and ``robustness`` when measured); None: the sections that need it say not measured.
        overrides: ``.hydra/overrides.yaml`` (the train command's overrides); None: not recorded.
        class_names: the classes, in order (default: those of ``evaluation``'s ``per_class``).
        run_name: the run dir's name (never its path).
        figures: figure files to show, relative to the card (``eval/confusion_matrix.png``, ``eval/reliability.png``,
            ``eval/robustness.png``).

    Sections: intended use, data, accuracy, per-class recall, worst confusion pairs, calibration,
    robustness, hardware, time, how to reproduce.
    """
    class_names = list(class_names) or list((evaluation or {}).get("per_class") or [])
    model = (evaluation or {}).get("model") or (train or {}).get("model") or "classifier"
    dataset = dataset_label(config, train)
    lines = [f"# Model card: {model}" + (f", run {run_name}" if run_name else ""), "",
             f"A {model} {dataset} classifier trained with cifarlab's `train.py`. Written by `evaluate.py` from the "
             "run's config.yaml and metrics.json and the evaluation's metrics.json; fractions as %, times in seconds."]
    checkpoint = (evaluation or {}).get("checkpoint") or {}
    tested = (train or {}).get("tested_checkpoint") or {}
    if checkpoint or tested:
        lines += ["", f"- **Weights**: the {tested.get('which', 'given')} checkpoint"
                  + (f", sha256 `{checkpoint['sha256'][:16]}…`" if checkpoint.get("sha256") else "") + "."]
    lines += [""]
    for section in (intended_use(class_names, dataset), data_section(config, train, evaluation),
                    accuracy_section(train, evaluation), per_class_section(evaluation),
                    confusion_section(evaluation, figures), calibration_section(evaluation, figures),
                    robustness_section(evaluation, figures), hardware_section(train, evaluation),
                    time_section(train, evaluation), reproduce_section(overrides, train)):
        lines += [*section, ""]
    return "\n".join(lines)


def model_card(run: TrainedRun, evaluation: Mapping | None, figures: Sequence[str] = ()) -> str:
    """:func:`render_model_card` of ``run`` (what its run dir records) and its ``evaluation``."""
    record = run.record
    train = run.train_metrics.to_dict() if run.train_metrics else None
    return render_model_card(record.config if record else None, train, evaluation,
                             record.overrides if record else None, run.class_names,
                             Path(run.run_dir).name if run.run_dir else run.ckpt_path.name, figures)
