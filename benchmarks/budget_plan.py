"""What ``make train``'s budget would choose on another CPU, from that CPU's measured speeds: the plan table that
``cifarlab.training.budget.choose`` prints, without probing this machine.

    python benchmarks/budget_plan.py benchmarks/cpu_speeds/epyc_zen3_fp32.json [--wall-s 600] [--spent-s 40]

The speeds file holds ``candidates`` (``widths``, ``precision``, ``train_images_per_s``, ``infer_images_per_s``, as
:class:`cifarlab.training.budget.Speed`) and ``spent_s`` (the seconds start-up and the probe took there). The plan
uses the committed frontier, the preset's reserve (``budget.reserve_s``) and a 10,000-image test with its TTA.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from cifarlab.training.budget import Speed, load_frontier, plan, plan_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("speeds", type=Path, help="a JSON file of measured speeds (benchmarks/cpu_speeds/*.json)")
    parser.add_argument("--wall-s", type=float, default=600.0, help="the wall-time budget in seconds")
    parser.add_argument("--spent-s", type=float, default=None, help="seconds spent before the plan (default: the file's)")
    parser.add_argument("--reserve-s", type=float, default=30.0, help="seconds kept for writing (the preset's)")
    parser.add_argument("--tta", default="flip_translate", help="the test's TTA (the preset's)")
    parser.add_argument("--batch-size", type=int, default=512, help="the training batch (the preset's)")
    args = parser.parse_args(argv)
    spec = json.loads(args.speeds.read_text())
    speeds = {(tuple(c["widths"]), c["precision"]): Speed(c["train_images_per_s"], c["infer_images_per_s"])
              for c in spec["candidates"]}
    chosen = plan(speeds, load_frontier(), args.wall_s, args.spent_s if args.spent_s is not None else spec["spent_s"],
                  args.reserve_s, 10_000, args.tta)
    print(spec["cpu"])
    Console(width=120).print(plan_table(chosen))
    steps = chosen.chosen.images // args.batch_size
    print(f"to train that choice at a fixed image count on another machine: model.net.widths="
          f"[{','.join(map(str, chosen.chosen.widths))}] trainer.precision={chosen.chosen.precision} "
          f"model.scheduler.budget_s=null trainer.max_time=null trainer.max_steps={steps}")


if __name__ == "__main__":
    main()
