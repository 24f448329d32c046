"""Results tables generated from committed run records, so that each number in the README and docs/results.md
can be traced to the run that measured it, and a typo cannot pass for a result (timm's ``results/*.csv``,
airbench's logged runs).

A record is a folder ``docs/runs/<group>/<run>/`` with the run's ``metrics.json``, ``config.yaml`` and
``.hydra/overrides.yaml``, plus ``held_out.json`` (``benchmarks/frontier.py``'s scores) and ``eval/metrics.json``
(evaluate.py's report) where the run has them.
:func:`record` copies them out of a run dir and replaces the machine's absolute paths (the run dir, the working
folder, the home folder) with ``<run>``, ``<cwd>`` and ``~``; no checkpoint is copied.

Generated tables sit in markdown files between ``<!-- results:<name> -->`` and ``<!-- /results:<name> -->``;
``make results`` (``python -m cifarlab.reports.results``) rewrites every such block from the records, and
``--check`` exits 1 when a committed block differs from what the records give. The committed frontier that
``make train``'s budget reads (``src/cifarlab/training/frontier.csv``) is generated from ``docs/runs/frontier`` too.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from cifarlab.runs.rundir import RunDir

BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(.*?)(<!-- /results:(?P=name) -->)", re.DOTALL)


@dataclass(frozen=True)
class Record:
    """One recorded run: its folder name, ``metrics.json``, command-line overrides and ``held_out.json`` (or {})."""

    name: str
    metrics: dict
    overrides: list[str]
    held_out: dict


def anonymise(text: str, run_dir: Path) -> str:
    """``text`` without the machine's absolute paths: the run dir becomes ``<run>``, the current folder
    ``<cwd>``, the home folder ``~``."""
    for path, placeholder in ((run_dir.resolve(), "<run>"), (Path.cwd().resolve(), "<cwd>"), (Path.home(), "~")):
        text = text.replace(str(path), placeholder)
    return text


def record(run_dir: Path, dest: Path) -> Path:
    """Copy the record files of ``run_dir`` (:meth:`cifarlab.runs.rundir.RunDir.record_files`) to ``dest / run_dir.name``,
    paths anonymised (:func:`anonymise`); returns that folder.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.json`` (an unfinished run has no result to record).
    """
    layout = RunDir(run_dir)
    if not layout.finished:
        raise FileNotFoundError(f"{run_dir} has no metrics.json: only a finished run can be recorded")
    out = Path(dest) / layout.path.name
    for name in layout.record_files():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(anonymise((layout.path / name).read_text(), layout.path))
    return out


def read_group(folder: Path) -> list[Record]:
    """The records of one group folder, sorted by name."""
    records = []
    for run in (RunDir(p) for p in sorted(Path(folder).iterdir()) if RunDir(p).finished):  # a record mirrors a run dir
        records.append(Record(run.path.name, json.loads(run.metrics.read_text()), run.read_overrides() or [],
                              json.loads(run.held_out.read_text()) if run.held_out.is_file() else {}))
    return records


def override(record: Record, key: str) -> str | None:
    """The value ``record`` was given for ``key`` on the command line, or None."""
    return next((o.split("=", 1)[1] for o in record.overrides if o.split("=", 1)[0].lstrip("+~") == key), None)


def mean_std(values: list[float]) -> str:
    """``89.46 ± 0.23 %`` of fractions (sample std), or one value as ``89.46 %``."""
    if len(values) == 1:
        return f"{100 * values[0]:.2f} %"
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f} %"


def frontier_rows(records: list[Record]) -> list[dict]:
    """One row per frontier run: widths, training images, steps, seed, held-out accuracy plain and with TTA."""
    rows = []
    for r in records:
        widths = override(r, "model.net.widths").strip("[]").replace(" ", "")
        steps = r.metrics["global_step"]
        rows.append({"widths": widths, "images": r.held_out["images"], "steps": steps,
                     "seed": r.metrics["seed"], "val_acc": f"{r.held_out['val_acc']:.4f}",
                     "val_acc_tta": f"{r.held_out['val_acc_tta']:.4f}", "precision": r.metrics["precision"],
                     "cpu": r.metrics["provenance"]["device_name"], "record": f"docs/runs/frontier/{r.name}"})
    return sorted(rows, key=lambda row: (-int(row["widths"].split(",")[0]), row["images"], row["seed"]))


def frontier_csv(records: list[Record]) -> str:
    """``src/cifarlab/training/frontier.csv``: :func:`frontier_rows` as CSV."""
    rows = frontier_rows(records)
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def frontier_table(records: list[Record]) -> str:
    """Held-out accuracy with TTA (plain in brackets) per width (rows) and image count (columns)."""
    rows = frontier_rows(records)
    counts = sorted({row["images"] for row in rows})
    widths = list(dict.fromkeys(row["widths"] for row in rows))
    cell = {(row["widths"], row["images"]): f"{100 * float(row['val_acc_tta']):.2f} ({100 * float(row['val_acc']):.2f})"
            for row in rows}
    lines = ["| widths | " + " | ".join(f"{n:,} images" for n in counts) + " |", "|---" * (len(counts) + 1) + "|"]
    lines += [f"| {w} | " + " | ".join(cell.get((w, n), "") for n in counts) + " |" for w in widths]
    return "\n".join(lines) + "\n"


def seed_group_table(groups: dict[str, list[Record]]) -> str:
    """One row per seed group: mean ± std of the test accuracy plain and with TTA, steps, images/s, width,
    precision, CPU and commit (the groups' records: ``docs/runs/<group>/<seed run>/``)."""
    lines = ["| record | seeds | test accuracy | with TTA | steps | training images/s | widths | precision | CPU | commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, records in groups.items():
        m = [r.metrics for r in records]
        widths = {",".join(map(str, (r.metrics.get("budget") or {}).get("chosen", {}).get("widths", [])))
                  or (override(r, "model.net.widths") or "-").strip("[]").replace(" ", "") for r in records}
        lines.append(
            f"| `docs/runs/{name}` | {len(m)} | {mean_std([x['test']['acc'] for x in m])} | "
            f"{mean_std([x['test']['acc_tta'] for x in m])} | {', '.join(sorted({str(x['global_step']) for x in m}))} | "
            f"{statistics.fmean(x['images_per_s'] for x in m):.0f} | {', '.join(sorted(widths))} | "
            f"{', '.join(sorted({x['precision'] for x in m}))} | {m[0]['provenance']['device_name']} | "
            f"`{(m[0]['provenance'].get('git_sha') or '')[:8]}` |")
    return "\n".join(lines) + "\n"


# Overrides every frontier.py run has (the point's width, images, split and bookkeeping): not part of a variant.
FRONTIER_KEYS = ("experiment", "model.net.widths", "model.scheduler.budget_s", "trainer.max_time", "trainer.max_steps",
                 "data.val_size", "test", "seed", "data.root", "task_name", "trainer.precision", "hydra.run.dir")


def variant_table(records: list[Record], frontier_widths: frozenset[str] = frozenset()) -> str:
    """One row per recipe variant run by ``benchmarks/frontier.py --set ... --tag ...``: what it changed against
    the frontier's recipe (the overrides beyond :data:`FRONTIER_KEYS`, batch 512 being the recipe's; "the widths"
    for a network shape outside ``frontier_widths``), widths, training images, seed, held-out accuracy plain and
    with TTA, and the record."""
    lines = ["| variant | changed | widths | images | seed | held-out | with TTA | record |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r.name.split("_", 3)[-1], r.metrics["seed"])):
        changed = [o for o in r.overrides if o.split("=", 1)[0].lstrip("+~") not in FRONTIER_KEYS
                   and o != "data.batch_size=512"]
        widths = override(r, "model.net.widths").strip("[]").replace(" ", "")
        shape = "nothing" if widths in frontier_widths else "the widths"
        lines.append(f"| {r.name.split('_', 3)[-1]} | {', '.join(f'`{o}`' for o in changed) or shape} | "
                     f"{widths} | {r.held_out['images']:,} | "
                     f"{r.metrics['seed']} | {100 * r.held_out['val_acc']:.2f} % | {100 * r.held_out['val_acc_tta']:.2f} % | "
                     f"`{r.name}` |")
    return "\n".join(lines) + "\n"


def tables(runs: Path) -> dict[str, str]:
    """Every generated table by its block name, from the record folder ``runs`` (``docs/runs``)."""
    frontier = read_group(runs / "frontier") if (runs / "frontier").is_dir() else []
    variants = read_group(runs / "recipe_search") if (runs / "recipe_search").is_dir() else []
    groups = {p.name: read_group(p) for p in sorted(runs.iterdir()) if p.is_dir() and p.name.startswith("make_train")}
    return {"frontier": frontier_table(frontier) if frontier else "",
            "recipe-search": variant_table(variants, frozenset(r["widths"] for r in frontier_rows(frontier)))
            if variants else "",
            "make-train": seed_group_table({k: v for k, v in groups.items() if v})}


def render(text: str, generated: dict[str, str]) -> str:
    """``text`` with each ``results:<name>`` block's content replaced by ``generated[name]``.

    Raises:
        KeyError: a block names a table that is not generated.
    """
    return BLOCK.sub(lambda m: m.group(1) + generated[m.group("name")] + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    """``make results``: rewrite the generated blocks of ``--files`` and ``--frontier-csv``; ``--check`` only
    compares and returns 1 on a difference. ``record RUN_DIR GROUP_DIR`` records a finished run."""
    parser = argparse.ArgumentParser(prog="python -m cifarlab.reports.results", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("docs/runs"))
    parser.add_argument("--files", type=Path, nargs="+", default=[Path("README.md"), Path("docs/results.md")])
    parser.add_argument("--frontier-csv", type=Path, default=Path("src/cifarlab/training/frontier.csv"))
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated part differs from the records")
    parser.add_argument("--record", nargs=2, type=Path, metavar=("RUN_DIR", "GROUP_DIR"), help="record a finished run")
    args = parser.parse_args(argv)
    if args.record:
        print(record(*args.record))
        return 0
    generated = tables(args.runs)
    outputs = {path: render(path.read_text(), generated) for path in args.files}
    frontier = read_group(args.runs / "frontier") if (args.runs / "frontier").is_dir() else []
    if frontier:
        outputs[args.frontier_csv] = frontier_csv(frontier)
    stale = [str(path) for path, text in outputs.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        if stale:
            print("generated results differ from docs/runs in: " + ", ".join(stale) + " (run make results)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
    print("rewrote " + (", ".join(stale) if stale else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
