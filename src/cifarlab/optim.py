"""Optimiser + OneCycle schedule recipes selected by ``conf/optimizer/*.yaml``.

OneCycle: L. N. Smith & N. Topin, "Super-Convergence" (2017); the schedule is PyTorch's
``OneCycleLR``, stepped every batch. It sets the learning rate itself (starting at
``max_lr / div_factor``), so the optimisers take no ``lr`` of their own.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import OneCycleLR


def _one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, max_lr: float, pct_start: float,
               div_factor: float, final_div_factor: float, anneal_strategy: str, three_phase: bool) -> OneCycleLR:
    return OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start, div_factor=div_factor,
        final_div_factor=final_div_factor, anneal_strategy=anneal_strategy, three_phase=three_phase,
    )


def adam_onecycle(params: Iterable[torch.nn.Parameter], total_steps: int, weight_decay: float = 1e-4,
                  max_lr: float = 0.01, pct_start: float = 0.25, div_factor: float = 10.0,
                  final_div_factor: float = 100.0, anneal_strategy: str = "linear",
                  three_phase: bool = False) -> tuple[torch.optim.Optimizer, OneCycleLR]:
    """Adam (L2 ``weight_decay``) with a OneCycle schedule over ``total_steps`` batches.

    The recipe of the seed notebooks (Adam + OneCycle, max_lr from an LR range test).
    Returns (optimizer, scheduler); the scheduler must be stepped once per batch.
    """
    optimizer = torch.optim.Adam(params, lr=max_lr / div_factor, weight_decay=weight_decay)
    return optimizer, _one_cycle(optimizer, total_steps, max_lr, pct_start, div_factor, final_div_factor,
                                 anneal_strategy, three_phase)


def sgd_onecycle(params: Iterable[torch.nn.Parameter], total_steps: int, weight_decay: float = 5e-4,
                 momentum: float = 0.9, nesterov: bool = True, max_lr: float = 0.4, pct_start: float = 0.208,
                 div_factor: float = 1e3, final_div_factor: float = 1e3, anneal_strategy: str = "linear",
                 three_phase: bool = False) -> tuple[torch.optim.Optimizer, OneCycleLR]:
    """SGD with Nesterov momentum and a OneCycle schedule: Page's cifar10-fast recipe.

    Page: piecewise-linear LR 0 -> 0.4 at epoch 5 of 24 -> 0, momentum 0.9, weight decay 5e-4
    (his per-sum-of-losses values 0.4/512 and 5e-4*512 expressed per mean loss).
    Returns (optimizer, scheduler); the scheduler must be stepped once per batch.
    """
    optimizer = torch.optim.SGD(params, lr=max_lr / div_factor, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay)
    return optimizer, _one_cycle(optimizer, total_steps, max_lr, pct_start, div_factor, final_div_factor,
                                 anneal_strategy, three_phase)
