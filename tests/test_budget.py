"""The budget-first recipe: the chooser on the speeds of real CPUs, the budget's arithmetic, pinned parts, the
probe's cache, and a run moved to a CPU that infers fast in another precision."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from rich.console import Console

from cifarlab.training import budget
from cifarlab.training import pipeline as training
from cifarlab.training.budget import Speed, load_frontier, plan, plan_table, predict_accuracy, probe_speeds
from cifarlab.errors import ConfigError
from cifarlab.training.precision import cache_key
from cifarlab.runs.run import TrainedRun
from conftest import compose_train

W64, W48, W32, W24 = (64, 256, 256), (48, 192, 192), (32, 128, 128), (24, 96, 96)
# held-out accuracy with TTA against training images: the shape of a measured frontier, invented numbers
FRONTIER = {W64: [(60_000, 0.80), (130_000, 0.86), (270_000, 0.895), (500_000, 0.915)],
            W48: [(60_000, 0.79), (130_000, 0.85), (270_000, 0.885), (500_000, 0.905)],
            W32: [(60_000, 0.77), (130_000, 0.835), (270_000, 0.87), (500_000, 0.89)],
            W24: [(60_000, 0.75), (130_000, 0.815), (270_000, 0.85), (500_000, 0.87)]}
# bare fp32 steps at batch 512 on a 2-core AMD EPYC Zen 3 (training, inference images/s)
ZEN3 = {(W64, "32-true"): Speed(146, 420), (W48, "32-true"): Speed(304, 781), (W32, "32-true"): Speed(598, 1449),
        (W24, "32-true"): Speed(979, 2226)}
# a 2-core Xeon with AMX: bf16 autocast 3-4x faster than fp32
AMX = {(W64, "bf16-mixed"): Speed(940, 3000), (W48, "bf16-mixed"): Speed(1700, 5000),
       (W32, "bf16-mixed"): Speed(3000, 8000), (W24, "bf16-mixed"): Speed(4000, 10000),
       (W64, "32-true"): Speed(280, 900), (W32, "32-true"): Speed(900, 2500)}


def test_predictions_follow_the_frontier_in_log_images_and_claim_nothing_past_it() -> None:
    points = FRONTIER[W32]
    assert predict_accuracy(points, 130_000) == pytest.approx(0.835)
    assert predict_accuracy(points, (130_000 * 270_000) ** 0.5) == pytest.approx((0.835 + 0.87) / 2)
    assert predict_accuracy(points, 2_000_000) == pytest.approx(0.89)
    assert predict_accuracy(points, 30_000) < 0.77


@pytest.mark.parametrize("speeds,chosen", [(ZEN3, (W32, "32-true")), (AMX, (W64, "bf16-mixed"))])
def test_the_chooser_picks_what_the_machine_trains_best_and_the_table_shows_it(speeds, chosen) -> None:
    result = plan(speeds, FRONTIER, wall_s=600, spent_s=20, reserve_s=20, eval_images=10_000, tta="flip_translate")
    assert (result.chosen.widths, result.chosen.precision) == chosen
    console = Console(record=True, width=200)
    console.print(plan_table(result))
    lines = console.export_text().splitlines()
    marked = [line for line in lines if "chosen" in line]
    assert len(marked) == 1 and ",".join(map(str, chosen[0])) in marked[0] and chosen[1] in marked[0]
    assert len([line for line in lines if "%" in line]) == len(speeds)


def test_start_up_reserve_and_the_predicted_test_come_off_the_training_seconds() -> None:
    result = plan({(W64, "32-true"): Speed(146, 420)}, FRONTIER, wall_s=600, spent_s=25, reserve_s=20,
                  eval_images=10_000, tta="flip_translate")
    (row,) = result.rows
    assert row.test_s == pytest.approx(10_000 * 6 / 420)
    assert row.train_s == pytest.approx(600 - 25 - 20 - 10_000 * 6 / 420)
    assert row.images == int(146 * row.train_s)
    plain = plan({(W64, "32-true"): Speed(146, 420)}, FRONTIER, 600, 25, 20, 10_000, "none", plain_images=5_000).rows[0]
    assert plain.test_s == pytest.approx(15_000 / 420)
    held_out = plan({(W64, "32-true"): Speed(146, 420)}, FRONTIER, 600, 25, 20, 10_000, "flip_translate", plain_images=5_000)
    assert held_out.rows[0].test_s == pytest.approx(65_000 / 420)
    given = plan({(W64, "32-true"): Speed(146, 420)}, FRONTIER, 600, 25, 20, 10_000, "none", train_s=1200).rows[0]
    assert given.train_s == 1200 and given.images == 146 * 1200


def test_a_budget_too_small_for_any_candidate_is_refused() -> None:
    with pytest.raises(ConfigError, match="budget.wall_s=60 leaves no training time.*Raise budget.wall_s"):
        plan(ZEN3, FRONTIER, wall_s=60, spent_s=20, reserve_s=20, eval_images=10_000, tta="flip_translate")


def test_the_probe_is_cached_per_machine_and_measures_only_what_is_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path))
    measured = []

    def fake(widths, precision, batch_size):
        measured.append((widths, precision, batch_size))
        return Speed(100.0 * widths[0], 300.0)

    first = probe_speeds([W64, W32], ["32-true"], 512, measure=fake)
    again = probe_speeds([W64, W32, W24], ["32-true"], 512, measure=fake)
    assert measured == [(W64, "32-true", 512), (W32, "32-true", 512), (W24, "32-true", 512)]
    assert first[(W32, "32-true")] == again[(W32, "32-true")] == Speed(3200.0, 300.0)
    assert list(json.loads((tmp_path / "budget.json").read_text())) == [f"{cache_key()} | batch 512"]


def fake_probe(asked: list, speeds: dict):
    def probe(widths, precisions, batch_size):
        asked.append((widths, precisions))
        return {key: value for key, value in speeds.items() if key[0] in widths and key[1] in precisions}
    return probe


def test_make_train_chooses_and_writes_the_choice_into_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list = []
    monkeypatch.setattr(budget, "probe_speeds", fake_probe(asked, ZEN3))
    monkeypatch.setattr(budget, "load_frontier", lambda: FRONTIER)
    monkeypatch.setattr(budget, "cpu_precision", lambda: "32-true")
    cfg = compose_train(["experiment=cpu_airbench"])
    chosen = training.apply_budget(cfg, 10_000, 0, started_at=time.time() - 15)
    assert asked == [([W64, W48, W32, W24], ["32-true"])]
    assert chosen.spent_s == pytest.approx(15, abs=1)
    assert list(cfg.model.net.widths) == list(W32) and cfg.trainer.precision == "32-true"
    assert cfg.model.scheduler.budget_s == cfg.trainer.max_time.seconds == round(chosen.chosen.train_s, 1)
    assert chosen.to_dict()["chosen"]["widths"] == W32 and len(chosen.to_dict()["candidates"]) == 4


def test_a_pinned_width_and_precision_are_not_probed_for(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list = []
    monkeypatch.setattr(budget, "probe_speeds", fake_probe(asked, AMX))
    monkeypatch.setattr(budget, "load_frontier", lambda: FRONTIER)
    cfg = compose_train(["experiment=cpu_airbench", "model.net.widths=[64,256,256]", "trainer.precision=32-true",
                         "model.scheduler.budget_s=1200"])
    chosen = training.apply_budget(cfg, 10_000, 0)
    assert asked == [([W64], ["32-true"])]
    assert chosen.chosen.train_s == 1200 and cfg.model.scheduler.budget_s == 1200 and cfg.trainer.precision == "32-true"


def test_a_fixed_step_count_chooses_nothing_and_needs_a_width() -> None:
    cfg = compose_train(["experiment=cpu_airbench", "model.scheduler.budget_s=null", "trainer.max_time=null",
                         "model.net.widths=[32,128,128]"])
    assert training.apply_budget(cfg, 10_000, 0) is None and list(cfg.model.net.widths) == list(W32)
    with pytest.raises(ConfigError, match="model.net.widths=null is chosen by the budget"):
        training.apply_budget(compose_train(["experiment=cpu_airbench", "model.scheduler.budget_s=null"]), 10_000, 0)


def test_the_committed_frontier_predicts_every_width_make_train_can_choose() -> None:
    frontier = load_frontier()
    candidates = {tuple(w) for w in compose_train(["experiment=cpu_airbench"]).budget.widths}
    assert candidates <= set(frontier), f"no frontier for {candidates - set(frontier)}"
    for widths in candidates:
        images = [n for n, _ in frontier[widths]]
        assert len(images) >= 2 and images == sorted(images) and images[0] <= 70_000, (widths, images)
        assert all(0.1 < acc < 1 for _, acc in frontier[widths])


@pytest.mark.slow  # trains (the session's trained_run)
def test_a_bf16_run_on_a_cpu_whose_probe_says_fp32_infers_in_fp32_and_says_so(trained_run: Path, tmp_path: Path,
                                                                               monkeypatch, caplog) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    moved = tmp_path / "run"
    import shutil

    shutil.copytree(trained_run, moved)
    (moved / "metrics.json").write_text(json.dumps(metrics | {"precision": "bf16-mixed"}))
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "precision.json").write_text(json.dumps({cache_key(): {"best": "32-true"}}))
    with caplog.at_level(logging.WARNING):
        run = TrainedRun(moved, device="cpu")
    assert (run.precision, run.trained_precision) == ("32-true", "bf16-mixed")
    assert "inferring in 32-true" in caplog.text and "the run trained in bf16-mixed" in caplog.text
    assert TrainedRun(moved, precision="bf16-mixed", device="cpu").precision == "bf16-mixed"



def test_the_first_job_of_a_process_counts_from_its_start_and_later_jobs_from_their_own(monkeypatch) -> None:
    monkeypatch.setattr(budget, "_jobs_started", 0)
    monkeypatch.setattr(budget, "process_start", lambda: 1000.0)
    assert budget.job_start() == 1000.0
    assert budget.job_start() == pytest.approx(time.time(), abs=1)
