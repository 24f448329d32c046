"""Learning-rate schedules: one that follows the clock, for CPU presets that must end on time on any
machine, and the check of a step-counted OneCycle that PyTorch would divide by zero on.

``TimeBudgetOneCycle`` is OneCycle's linear shape (L. N. Smith & N. Topin 2017, as PyTorch's
``OneCycleLR`` with ``anneal_strategy="linear"``) with progress measured as elapsed seconds over a
budget instead of steps over a total: a 65 images/s CPU and a 107 images/s CPU both anneal to the end
in ``budget_s`` seconds, the faster one having seen more images. The Trainer's ``max_time`` (set to the
same budget in ``conf/experiment/cpu_quick.yaml``) stops the run there. Runs are not step-for-step
reproducible: the number of steps depends on the machine's speed. With ``budget_s=None`` the same shape
spans a fixed number of steps (``trainer.max_steps``): a fixed image count, reproducible on any machine, as the
accuracy-against-images frontier is measured.
"""
from __future__ import annotations

import time
from typing import Annotated

import torch
from torch.optim.lr_scheduler import LRScheduler

from cifarlab.config.ranges import DIV_FACTOR, FINAL_DIV_FACTOR, MAX_LR, PCT_START, Range, check_arguments
from cifarlab.errors import ConfigError

BUDGET_S = Range(0, low_open=True, nullable=True,
                 meaning="seconds of training the schedule spans; null: it spans trainer.max_steps")


class TimeBudgetOneCycle(LRScheduler):
    """Linear warm-up from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``budget_s`` seconds, then linear decay to ``max_lr / div_factor / final_div_factor`` at ``budget_s``;
    with ``budget_s=None``, over ``total_steps`` steps instead.

    The clock starts at the first optimiser step (set-up and data loading before it are not counted).
    Step it once per batch, like ``OneCycleLR``.

    Args:
        optimizer: the wrapped optimiser; every group gets ``max_lr`` (or its entry of a list).
        budget_s: training seconds the schedule spans; ``None``: it spans ``total_steps`` steps.
        max_lr: peak learning rate, a float or one per parameter group.
        pct_start: fraction of the budget spent warming up.
        div_factor, final_div_factor: as in ``OneCycleLR``.
        total_steps: the module's step estimate (``trainer.estimated_stepping_batches``), used with ``budget_s=None``.
        clock: seconds source, ``time.monotonic`` by default (tests pass a fake).

    Raises:
        ConfigError: (a ``ValueError``) an argument out of its declared range (a non-positive budget, a
            ``pct_start`` outside (0, 1)), or ``budget_s=None`` without a positive ``total_steps``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, budget_s: Annotated[float | None, BUDGET_S],
                 max_lr: Annotated[float | list[float], MAX_LR], pct_start: Annotated[float, PCT_START] = 0.25,
                 div_factor: Annotated[float, DIV_FACTOR] = 10.0,
                 final_div_factor: Annotated[float, FINAL_DIV_FACTOR] = 100.0,
                 total_steps: int | None = None, clock=time.monotonic) -> None:
        check_arguments(TimeBudgetOneCycle, locals(), "model.scheduler")
        if budget_s is None and not (total_steps or 0) > 0:
            raise ConfigError(f"model.scheduler.budget_s=null spans the run's steps, but it has {total_steps}: the "
                              "schedule must be > 0 steps long. Set trainer.max_steps, or a budget_s in seconds.")
        groups = len(optimizer.param_groups)
        self.max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * groups
        self.budget_s, self.total_steps, self.pct_start = budget_s, total_steps, pct_start
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.clock = clock
        self.started_at: float | None = None
        super().__init__(optimizer)

    @property
    def progress(self) -> float:
        """Elapsed fraction of the budget (seconds, or steps with ``budget_s=None``), in [0, 1]; 0 before the first step."""
        if self.budget_s is None:
            return min(1.0, self.last_epoch / self.total_steps)
        if self.started_at is None:
            return 0.0
        return min(1.0, (self.clock() - self.started_at) / self.budget_s)

    def state_dict(self) -> dict:
        """The schedule's state without the clock (a function) and with the elapsed seconds instead of
        a clock reading, so checkpoints load under ``weights_only`` and a resumed run continues the budget."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "clock", "started_at")}
        state["elapsed_s"] = None if self.started_at is None else self.clock() - self.started_at
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        elapsed = state.pop("elapsed_s", None)
        self.__dict__.update(state)
        self.started_at = None if elapsed is None else self.clock() - elapsed

    def factor(self, progress: float) -> float:
        """The learning rate over ``max_lr`` at ``progress`` in [0, 1]."""
        start, end = 1 / self.div_factor, 1 / self.div_factor / self.final_div_factor
        if progress < self.pct_start:
            return start + (1 - start) * progress / self.pct_start
        return 1 + (end - 1) * (progress - self.pct_start) / (1 - self.pct_start)

    def get_lr(self) -> list[float]:
        if self.budget_s is not None and self.last_epoch >= 1 and self.started_at is None:
            self.started_at = self.clock()
        return [max_lr * self.factor(self.progress) for max_lr in self.max_lrs]


def check_one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool = False) -> None:
    """Refuse a OneCycle schedule with a phase of zero steps, on which PyTorch's ``OneCycleLR``
    divides by zero (e.g. 4 steps with ``pct_start=0.25``: a warm-up of 0 steps). Shorter phases
    that do not divide by zero, as in a 1-step ``fast_dev_run``, are left to run.

    Raises:
        ConfigError: naming the step count and the phases.
    """
    warmup_end = float(pct_start * total_steps) - 1
    ends = [warmup_end, 2 * warmup_end, total_steps - 1] if three_phase else [warmup_end, total_steps - 1]
    lengths = [ends[0]] + [b - a for a, b in zip(ends, ends[1:])]
    if 0 in lengths:
        raise ConfigError(
            f"OneCycleLR cannot schedule {total_steps} steps with model.scheduler.pct_start={pct_start}: its phases "
            f"would last {', '.join(f'{n:g}' for n in lengths)} steps. Train for more steps (a larger data.subset "
            "or more trainer.max_epochs) or change model.scheduler.pct_start."
        )
