"""The accuracy frontier of airbench's network: held-out accuracy against training images, per width.

Each point is one ``train.py`` run of ``experiment=cpu_airbench`` at a fixed image count instead of its time
budget (``model.scheduler.budget_s=null``: the budget's learning-rate shape, lookahead and whitening-bias
freeze span ``trainer.max_steps``), with 5,000 training images held out (``data.val_size=5000``) and the test
set never read (``test=false``). The held-out images are then scored plain and with the preset's TTA
(flip + 1-pixel translations) through :class:`cifarlab.run.TrainedRun`. An image count is a property of the
recipe, not of the machine, so any machine measures the same frontier; only the time it takes differs.

Rows go to ``--csv`` (one per run: widths, images, steps, seed, held-out accuracy plain and with TTA, the
training seconds and images/s of this machine, precision, CPU). A run whose row is there is skipped, and a run
dir with a finished ``metrics.json`` is scored without training again, so the command continues where it
stopped. Run: ``python benchmarks/frontier.py --data-root <data> --csv src/cifarlab/frontier.csv`` (the committed
frontier that ``make train``'s budget reads), then ``--plot docs/frontier.png`` draws it.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = ["64,256,256", "48,192,192", "32,128,128", "24,96,96"]
IMAGES = [60_000, 130_000, 270_000, 500_000]
COLUMNS = ["widths", "images", "steps", "seed", "val_acc", "val_acc_tta", "train_seconds", "images_per_s", "precision",
           "cpu", "run_dir"]


def overrides(widths: str, steps: int, seed: int, data_root: str, precision: str | None) -> list[str]:
    """``train.py`` overrides of one frontier point."""
    return ["experiment=cpu_airbench", f"model.net.widths=[{widths}]", "model.scheduler.budget_s=null",
            "trainer.max_time=null", f"trainer.max_steps={steps}", "data.val_size=5000", "test=false", f"seed={seed}",
            f"data.root={data_root}", "task_name=frontier", *([f"trainer.precision={precision}"] if precision else [])]


def score(run_dir: Path, tta: str = "flip_translate") -> tuple[float, float, dict]:
    """Held-out accuracy (fraction) plain and with ``tta``, and the run's metrics.json."""
    from cifarlab.run import TrainedRun

    run = TrainedRun(run_dir)
    images, labels = run.held_out_set()
    plain = float((run.predict(images, 1000).argmax(1).numpy() == labels).mean())
    with_tta = float((run.predict(images, 1000, tta).argmax(1).numpy() == labels).mean())
    return plain, with_tta, json.loads((run_dir / "metrics.json").read_text())


def plot(table: Path, png: Path) -> None:
    """Held-out accuracy with TTA (solid) and plain (dashed) against training images (log axis), one colour per width."""
    from matplotlib.figure import Figure

    rows = list(csv.DictReader(table.open()))
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for i, widths in enumerate(dict.fromkeys(r["widths"] for r in rows)):
        points = sorted((int(r["images"]), float(r["val_acc_tta"]), float(r["val_acc"])) for r in rows if r["widths"] == widths)
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
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--widths", nargs="+", default=WIDTHS, help="comma-separated conv widths, e.g. 32,128,128")
    parser.add_argument("--images", nargs="+", type=int, default=IMAGES, help="training images of each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--precision", default=None, help="trainer.precision; default: the preset's (fastest here)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "frontier")
    parser.add_argument("--csv", type=Path, default=ROOT / "outputs" / "frontier" / "frontier.csv")
    parser.add_argument("--plot", type=Path, default=None, help="draw --csv into this PNG and exit")
    args = parser.parse_args()
    if args.plot:
        plot(args.csv, args.plot)
        return
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.csv.is_file():
        done = {(r["widths"], int(r["images"]), int(r["seed"])) for r in csv.DictReader(args.csv.open())}
    if args.data_root is None:
        parser.error("--data-root is needed to train")
    for widths in args.widths:
        for images in args.images:
            if (widths, images, args.seed) in done:
                continue
            steps = math.ceil(images / args.batch_size)
            run_dir = args.out / f"w{widths.split(',')[0]}_i{images}_s{args.seed}"
            if not (run_dir / "metrics.json").is_file():
                command = [sys.executable, str(ROOT / "train.py"), *overrides(widths, steps, args.seed, args.data_root,
                                                                              args.precision),
                           f"data.batch_size={args.batch_size}", f"hydra.run.dir={run_dir}"]
                print(" ".join(command[1:]), flush=True)
                proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(f"error: the run of widths {widths}, {images} images failed:\n{proc.stderr[-3000:]}")
            plain, with_tta, metrics = score(run_dir)
            (run_dir / "held_out.json").write_text(json.dumps(
                {"images": images, "val_acc": plain, "val_acc_tta": with_tta, "tta": "flip_translate"}, indent=2) + "\n")
            row = {"widths": widths, "images": images, "steps": steps, "seed": args.seed, "val_acc": f"{plain:.4f}",
                   "val_acc_tta": f"{with_tta:.4f}", "train_seconds": f"{metrics['train_seconds']:.1f}",
                   "images_per_s": f"{metrics['images_per_s']:.0f}", "precision": metrics["precision"],
                   "cpu": metrics.get("provenance", {}).get("device_name", ""), "run_dir": run_dir.name}
            new = not args.csv.is_file()
            with args.csv.open("a", newline="") as f:
                writer = csv.DictWriter(f, COLUMNS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
            print(row, flush=True)


if __name__ == "__main__":
    main()
