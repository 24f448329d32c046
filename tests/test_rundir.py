"""The run-dir layout and train.py's typed result: metrics.json round-trips through TrainResult, is
written atomically, and a file of another schema or cut short is refused with a message."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import get_object

from cifarlab.errors import CifarlabError
from cifarlab.runs.legacy import current_target
from cifarlab.runs.result import TRAIN_SCHEMA, TestedCheckpoint, TrainResult
from cifarlab.runs.rundir import RunDir, write_atomically, write_json_atomic
from conftest import ROOT, train_result as result

FIXTURES = ROOT / "tests" / "fixtures"


def test_metrics_json_round_trips_through_the_result_class(tmp_path: Path) -> None:
    original = result()
    RunDir(tmp_path).write_result(original)
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert next(iter(payload)) == "schema" and payload["schema"] == TRAIN_SCHEMA
    assert payload["test"]["acc_tta"] == 0.9038 and payload["tested_checkpoint"] == {"which": "last", "path": "checkpoints/last.ckpt"}
    assert TrainResult.from_json(tmp_path / "metrics.json") == original
    assert RunDir(tmp_path).read_result() == original and RunDir(tmp_path).finished


def test_a_run_without_a_test_or_held_out_split_round_trips(tmp_path: Path) -> None:
    original = result(test=None, val=None, tested_checkpoint=TestedCheckpoint("in_memory", None))
    RunDir(tmp_path).write_result(original)
    assert TrainResult.from_json(tmp_path / "metrics.json") == original


def test_older_files_lacking_optional_fields_load_and_unknown_fields_are_ignored() -> None:
    payload = result().to_dict()
    del payload["norm"], payload["lr_find"], payload["epoch_images_per_s"]
    payload["a_field_of_a_later_release"] = 1
    loaded = TrainResult.from_dict(payload)
    assert loaded.norm is None and loaded.epoch_images_per_s == [] and loaded.test.acc == 0.8946


@pytest.mark.parametrize("change, message", [
    ({"schema": "cifarlab.train/0"}, r"schema 'cifarlab.train/0', not cifarlab.train/1"),
    ({"model": None}, r"is incomplete"),
])
def test_another_schema_or_a_missing_field_is_refused(change: dict, message: str) -> None:
    payload = result().to_dict() | change
    if change.get("model", "") is None:
        del payload["model"]
    with pytest.raises(CifarlabError, match=message):
        TrainResult.from_dict(payload)


def test_damaged_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"schema": "cifarlab.tr')
    with pytest.raises(CifarlabError, match=r"metrics.json is not JSON"):
        RunDir(tmp_path).read_result()


def test_an_atomic_write_leaves_the_old_file_whole_when_serialising_fails(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # not JSON: fails before anything is renamed
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_the_layout_names_the_files_and_finds_a_checkpoint_s_run(tmp_path: Path) -> None:
    layout = RunDir(tmp_path)
    assert layout.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt" and not layout.finished
    assert layout.config == tmp_path / "config.yaml" and layout.hydra == tmp_path / ".hydra"
    assert RunDir.of_checkpoint(layout.last_checkpoint) == layout and RunDir.of_checkpoint(tmp_path / "x.ckpt") is None
    assert layout.requeue_checkpoint() is None and layout.read_result() is None


def targets(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "_target_"] + [t for v in node.values() for t in targets(v)]
    return [t for v in node for t in targets(v)] if isinstance(node, list) else []


def test_every_target_of_an_old_run_config_names_a_class_of_today() -> None:
    config = RunDir(FIXTURES / "airbench_1fa7fc9").read_config()
    found = targets(config)
    assert "cifarlab.training.callbacks.AirbenchWhitening" in found and "cifarlab.training.progress.progress_bar" in found
    assert all(get_object(t) is not None for t in found)  # each imports: none of the old module paths is left


def test_a_moved_module_keeps_its_class_name_and_a_current_target_is_kept() -> None:
    assert current_target("cifarlab.schedules.TimeBudgetOneCycle") == "cifarlab.training.schedules.TimeBudgetOneCycle"
    assert current_target("cifarlab.sweeps.SweepSummary") == "cifarlab.runs.sweeps.SweepSummary"
    assert current_target("cifarlab.models.AirbenchNet") == "cifarlab.models.AirbenchNet"


def test_the_one_atomic_writer_leaves_the_old_file_whole_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("old\n")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
