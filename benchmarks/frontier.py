"""The accuracy frontier of airbench's network: held-out accuracy against training images, per width.

Each point is one ``train.py`` run of ``experiment=cpu_airbench`` at a fixed image count instead of its time
budget (``model.scheduler.budget_s=null``: the budget's learning-rate shape, lookahead and whitening-bias
freeze span ``trainer.max_steps``), with 5,000 training images held out (``data.val_size=5000``) and the test
set never read (``test=false``). The held-out images are then scored plain and with the preset's TTA
(flip + 1-pixel translations) through :class:`cifarlab.runs.run.TrainedRun`, into the run's ``held_out.json``. An
image count is a property of the recipe, not of the machine, so any machine measures the same frontier; only
the time it takes differs.

Each finished point is recorded in ``--records`` (``docs/runs/frontier/w<width>_i<images>_s<seed>/``,
:func:`cifarlab.reports.results.record`); a recorded point is skipped, and a run dir with a finished
``metrics.json`` is scored without training again, so the command continues where it stopped, on any machine.
``make results`` then writes the committed frontier that ``make train``'s budget reads
(``src/cifarlab/training/frontier.csv``) and the table of docs/results.md from the records; ``--plot docs/frontier.png``
draws it. Run: ``python benchmarks/frontier.py --data-root <data>``.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from cifarlab.reports.results import frontier_rows, read_group, record

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = ["64,256,256", "48,192,192", "32,128,128", "24,96,96"]
IMAGES = [60_000, 130_000, 270_000, 500_000]
TTA = "flip_translate"


def overrides(widths: str, steps: int, seed: int, data_root: str, precision: str | None) -> list[str]:
    """``train.py`` overrides of one frontier point."""
    return ["experiment=cpu_airbench", f"model.net.widths=[{widths}]", "model.scheduler.budget_s=null",
            "trainer.max_time=null", f"trainer.max_steps={steps}", "data.val_size=5000", "test=false", f"seed={seed}",
            f"data.root={data_root}", "task_name=frontier", *([f"trainer.precision={precision}"] if precision else [])]


def score(run_dir: Path, images: int) -> dict:
    """Write and return ``held_out.json``: the held-out accuracy (fraction) plain and with :data:`TTA`, in the
    precision the run trained in."""
    from cifarlab.runs.run import TrainedRun

    trained = json.loads((run_dir / "metrics.json").read_text())["precision"]
    run = TrainedRun(run_dir, precision=trained)
    x, y = run.held_out_set()
    scores = {"images": images, "val_acc": float((run.predict(x, 1000).argmax(1).numpy() == y).mean()),
              "val_acc_tta": float((run.predict(x, 1000, TTA).argmax(1).numpy() == y).mean()), "tta": TTA}
    (run_dir / "held_out.json").write_text(json.dumps(scores, indent=2) + "\n")
    return scores


def plot(records: Path, png: Path) -> None:
    """Held-out accuracy with TTA (solid) and plain (dashed) against training images (log axis), one colour per width."""
    from matplotlib.figure import Figure

    rows = frontier_rows(read_group(records))
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for i, widths in enumerate(dict.fromkeys(r["widths"] for r in rows)):
        points = [(r["images"], float(r["val_acc_tta"]), float(r["val_acc"])) for r in rows if r["widths"] == widths]
        images = [p[0] for p in points]
        axes.plot(images, [100 * p[1] for p in points], "o-", color=f"C{i}", label=f"widths {widths}, TTA")
        axes.plot(images, [100 * p[2] for p in points], "x--", color=f"C{i}", alpha=0.6, label=f"widths {widths}, plain")
    axes.set_xscale("log")
    axes.set_xlabel("training images (log scale)")
    axes.set_ylabel("held-out accuracy, 5,000 images (%)")
    axes.set_title("airbench's network by width: CIFAR-10 (JPEG q75 copy), one seed per point")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.savefig(png, dpi=100, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="the folder holding cifar-10-batches-py/")
    parser.add_argument("--widths", nargs="+", default=WIDTHS, help="comma-separated conv widths, e.g. 32,128,128")
    parser.add_argument("--images", nargs="+", type=int, default=IMAGES, help="training images of each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--precision", default=None, help="trainer.precision; default: the preset's (fastest here)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "frontier", help="where the runs train")
    parser.add_argument("--records", type=Path, default=ROOT / "docs" / "runs" / "frontier")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="further train.py overrides of every run (a recipe variant), e.g. "
                             "model.loss.label_smoothing=0.1; give --tag with them")
    parser.add_argument("--tag", default="", help="appended to each run's name, e.g. ls0.1 (w24_i500000_s0_ls0.1)")
    parser.add_argument("--plot", type=Path, default=None, help="draw the records into this PNG and exit")
    args = parser.parse_args()
    if args.plot:
        plot(args.records, args.plot)
        return
    if args.data_root is None:
        parser.error("--data-root is needed to train")
    if args.set and not args.tag:
        parser.error("--set changes the recipe: give --tag too, so its runs are not named as the frontier's")
    for widths in args.widths:
        for images in args.images:
            name = f"w{widths.split(',')[0]}_i{images}_s{args.seed}" + (f"_{args.tag}" if args.tag else "")
            if (args.records / name / "held_out.json").is_file():
                continue
            run_dir = args.out / name
            if not (run_dir / "metrics.json").is_file():
                steps = math.ceil(images / args.batch_size)
                command = [sys.executable, str(ROOT / "train.py"), *overrides(widths, steps, args.seed, args.data_root,
                                                                              args.precision),
                           f"data.batch_size={args.batch_size}", *args.set, f"hydra.run.dir={run_dir}"]
                print(" ".join(command[1:]), flush=True)
                proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(f"error: the run of widths {widths}, {images} images failed:\n{proc.stderr[-3000:]}")
            print(name, score(run_dir, images), flush=True)
            record(run_dir, args.records)


if __name__ == "__main__":
    main()
