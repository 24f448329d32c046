"""The fast tier (``make test``: ``-m "not slow"``) starts no process, trains no model and uses no
training fixture."""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from conftest import ROOT, TRAINING_FIXTURES

# calls that start a process, and calls that train in this process (train.py's main, the LR range test;
# and train() where a module imports cifarlab.training.train)
PROCESS_CALLS = {"run_script", "Popen", "sync_playwright", "os.system", "subprocess.run"}
TRAINING_CALLS = {"train_main", "find_lr"}


def callees(function: ast.FunctionDef) -> set[str]:
    """Names of what ``function`` calls: ``f`` for ``f(...)``, ``m.f`` and ``f`` for ``m.f(...)``."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            names.add(node.func.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
            if isinstance(node.func.value, ast.Name):
                names.add(f"{node.func.value.id}.{node.func.attr}")
    return names


@cache
def slow_functions(module: Path) -> frozenset[str]:
    """Names of the top-level functions of ``module`` that start a process or train: they call one of
    :data:`PROCESS_CALLS` or :data:`TRAINING_CALLS`, ``train`` in a module that imports
    ``cifarlab.training.train``, or another function of the module that does."""
    source = module.read_text()
    slow = PROCESS_CALLS | TRAINING_CALLS | ({"train"} if "from cifarlab.training.pipeline import train" in source else set())
    calls = {node.name: callees(node) for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    found: set[str] = set()
    while new := {name for name, called in calls.items() if name not in found and called & (slow | found)}:
        found |= new
    return frozenset(found)


def test_slow_functions_are_found_directly_and_through_helpers() -> None:
    train = slow_functions(ROOT / "tests" / "test_train.py")
    assert {"test_multirun_sweeps_two_models", "test_fast_dev_run_fits_and_tests"} <= train  # a process; training
    sweeps = slow_functions(ROOT / "tests" / "test_sweeps.py")  # through its helpers optuna() and train_main()
    assert "test_optuna_searches_on_the_held_out_split_and_resumes_from_its_storage" in sweeps
    assert "test_train_returns_none_without_a_held_out_split" in sweeps
    assert "test_summary_groups_all_but_seed_and_lists_jobs_without_metrics" not in sweeps


def test_the_selected_fast_tests_start_no_process_and_train_nothing(request: pytest.FixtureRequest) -> None:
    """Of the tests collected in this run (all of ``make test``'s under ``-m "not slow"``), those not marked
    ``slow`` neither start a process, nor train, nor use a fixture that does (``conftest.TRAINING_FIXTURES``
    and those :func:`slow_functions` finds)."""
    fast = [item for item in request.session.items
            if isinstance(item, pytest.Function) and item.get_closest_marker("slow") is None]
    conftest = slow_functions(ROOT / "tests" / "conftest.py")
    offenders = [item.nodeid for item in fast
                 if item.function.__name__ in slow_functions(Path(item.path))
                 or (TRAINING_FIXTURES | conftest | slow_functions(Path(item.path))) & set(item.fixturenames)]
    assert not offenders, f"mark these @pytest.mark.slow (they start a process or train): {offenders}"
