"""Results tables generated from the run records in docs/runs: the committed tables are what the records give,
a record keeps no absolute path, and a generated block is rewritten in place."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cifarlab.reports.results import main, record, render
from cifarlab.runs.rundir import RunDir
from conftest import ROOT, train_result


def test_the_committed_tables_are_what_the_records_give(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0, "a generated table differs from docs/runs: run make results"


def test_a_number_typed_into_a_generated_table_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    results = tmp_path / "results.md"
    text = (ROOT / "docs" / "results.md").read_text()
    start = text.index("<!-- results:frontier -->")
    end = text.index("<!-- /results:frontier -->")
    typed = text[:start] + re.sub(r"\d", "9", text[start:end], count=1) + text[end:]  # one digit of one number
    assert typed != text
    results.write_text(typed)
    assert main(["--check", "--files", str(results)]) == 1
    main(["--files", str(results), "--frontier-csv", str(tmp_path / "frontier.csv")])
    assert results.read_text() == text


def test_a_record_keeps_no_absolute_path_of_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "work" / "outputs" / "run1"
    (run / ".hydra").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    RunDir(run).write_result(train_result(output_dir=str(run)))
    (run / "config.yaml").write_text(f"paths:\n  output_dir: {run}\ndata:\n  root: {tmp_path / 'work' / 'data'}\n")
    (run / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    out = record(run, tmp_path / "records")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".hydra/overrides.yaml", "config.yaml", "metrics.json"]
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert str(tmp_path) not in path.read_text(), path
    assert json.loads((out / "metrics.json").read_text())["output_dir"] == "<run>"
    assert "root: <cwd>/data" in (out / "config.yaml").read_text()
    with pytest.raises(FileNotFoundError, match="only a finished run"):
        record(tmp_path, tmp_path / "records")


def test_render_replaces_only_the_named_blocks() -> None:
    text = "a\n<!-- results:x -->\nold\n<!-- /results:x -->\nb\n"
    assert render(text, {"x": "new\n"}) == "a\n<!-- results:x -->\nnew\n<!-- /results:x -->\nb\n"
    with pytest.raises(KeyError):
        render(text, {})


def test_a_recipe_variant_row_shows_only_what_it_changed() -> None:
    from cifarlab.reports.results import Record, variant_table

    overrides = ["experiment=cpu_airbench", "model.net.widths=[24,96,96]", "model.scheduler.budget_s=null",
                 "trainer.max_time=null", "trainer.max_steps=977", "data.val_size=5000", "test=false", "seed=1",
                 "data.root=../shared/data", "task_name=frontier", "trainer.precision=bf16-mixed", "data.batch_size=512",
                 "model.loss.label_smoothing=0.1", "hydra.run.dir=outputs/search/w24_i500000_s1_ls0.1"]
    row = variant_table([Record("w24_i500000_s1_ls0.1", {"seed": 1}, overrides,
                                {"images": 500000, "val_acc": 0.8688, "val_acc_tta": 0.88183})]).splitlines()[2]
    assert row == ("| ls0.1 | `model.loss.label_smoothing=0.1` | 24,96,96 | 500,000 | 1 | 86.88 % | 88.18 % | "
                   "`w24_i500000_s1_ls0.1` |")
