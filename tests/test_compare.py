"""compare.py: the paired tests against scipy, the config difference, and whole comparisons of
runs trained on the fixture (two augmentations x two seeds, laid out as two sweeps)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from cifarlab.errors import CifarlabError, ConfigError, DataError
from cifarlab.reports.compare import GALLERY, compare
from cifarlab.reports.config import BootstrapSettings, CompareConfig, Paths
from cifarlab.reports.config_diff import ABSENT, config_diff
from cifarlab.reports.evaluate import write_report
from cifarlab.reports.paired import bootstrap_delta, mcnemar, verdict, welch
from cifarlab.runs.run import TrainedRun
from conftest import CONF, QUICK_REPORT, compose_train, run_script, tiny_overrides


def outcomes(both_right: int, a_only: int, b_only: int, both_wrong: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Per-image correctness of A and B (N,) bool with the given paired counts, shuffled."""
    a = np.repeat([True, True, False, False], [both_right, a_only, b_only, both_wrong])
    b = np.repeat([True, False, True, False], [both_right, a_only, b_only, both_wrong])
    order = np.random.default_rng(seed).permutation(len(a))
    return a[order], b[order]


# ---- the tests, on synthetic pairs

@pytest.mark.parametrize("counts", [(50, 3, 12, 35), (0, 0, 5, 0), (10, 7, 7, 1), (900, 40, 61, 99), (5, 1, 0, 2)])
def test_mcnemar_p_is_scipys_binomtest_of_the_discordant_counts(counts: tuple[int, int, int, int]) -> None:
    both_right, a_only, b_only, both_wrong = counts
    result = mcnemar(*outcomes(*counts))
    assert (result.both_right, result.a_only, result.b_only, result.both_wrong) == counts
    assert result.p_value == stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert result.delta == pytest.approx((b_only - a_only) / sum(counts))
    assert result.acc_b - result.acc_a == pytest.approx(result.delta)


def test_identical_outcomes_give_no_difference() -> None:
    a, _ = outcomes(60, 0, 0, 40)
    result = mcnemar(a, a)
    assert (result.delta, result.p_value, result.a_only + result.b_only) == (0.0, 1.0, 0)
    assert bootstrap_delta(a, a) == (0.0, 0.0)
    assert verdict(result.delta, result.p_value, "exact McNemar", 0.05) == \
        "no detectable difference (p = 1, exact McNemar, α = 0.05)"


def test_bootstrap_interval_is_seeded_paired_and_holds_the_difference() -> None:
    a, b = outcomes(700, 40, 80, 180)
    low, high = bootstrap_delta(a, b, resamples=2000, seed=3)
    assert (low, high) == bootstrap_delta(a, b, resamples=2000, seed=3)
    assert low < 0.04 < high and high - low < 0.06
    diff = b.astype(float) - a.astype(float)
    want = stats.bootstrap((diff,), np.mean, n_resamples=2000, rng=np.random.default_rng(3)).confidence_interval
    assert (low, high) == pytest.approx((want.low, want.high))


@pytest.mark.parametrize("acc_a, acc_b", [([0.90, 0.91, 0.905], [0.92, 0.925, 0.93]),
                                          ([0.5, 0.6], [0.55, 0.58, 0.61, 0.52])])
def test_welch_is_scipys_ttest_ind_without_equal_variances(acc_a: list[float], acc_b: list[float]) -> None:
    result = welch(acc_a, acc_b)
    want = stats.ttest_ind(acc_b, acc_a, equal_var=False)
    assert (result.t, result.p_value, result.df) == pytest.approx((want.statistic, want.pvalue, want.df))
    assert result.mean_a == pytest.approx(np.mean(acc_a)) and result.std_b == pytest.approx(np.std(acc_b, ddof=1))
    with pytest.raises(ValueError, match="at least two runs on each side"):
        welch([0.9], acc_b)


def test_verdict_names_the_better_side_only_below_alpha() -> None:
    assert verdict(0.012, 0.003, "exact McNemar", 0.05) == "B is better than A by 1.20 points (p = 0.003, exact McNemar, α = 0.05)"
    assert verdict(-0.02, 0.0004, "exact McNemar", 0.01).startswith("A is better than B by 2.00 points (p = 0.0004")
    assert verdict(0.012, 0.41, "exact McNemar", 0.05) == "no detectable difference (p = 0.41, exact McNemar, α = 0.05)"
    assert verdict(0.01, float("nan"), "Welch's t-test", 0.05).startswith("no detectable difference (p = nan")


# ---- the config difference, on plain configs

def test_config_diff_leaves_out_paths_and_hydra_groups_and_seeds_only_between_groups() -> None:
    base = {"seed": 1, "task_name": "train", "paths": {"output_dir": "/runs/a"}, "resume": None,
            "data": {"root": "/data/x", "seed": 1, "train_transforms": [{"_target_": "Flip", "p": 0.5}]},
            "trainer": {"default_root_dir": "/runs/a", "max_epochs": 3},
            "callbacks": {"ckpt": {"dirpath": "/runs/a/checkpoints"}}}
    other = json.loads(json.dumps(base))
    other.update(seed=2, task_name="cpu_quick", paths={"output_dir": "/runs/b"})
    other["data"].update(root="/elsewhere", seed=2, train_transforms=[{"_target_": "Flip", "p": 0.3}])
    other["trainer"].update(default_root_dir="/runs/b", max_epochs=4)
    other["callbacks"]["ckpt"]["dirpath"] = "/runs/b/checkpoints"
    other["callbacks"]["ema"] = {"decay": 0.99}
    choices_a = {"model": "custom_resnet", "data/augmentation": "flip_crop", "hydra/launcher": "basic"}
    choices_b = {"model": "custom_resnet", "data/augmentation": "cutout8", "hydra/launcher": "local"}
    diff = config_diff(base, other, choices_a, choices_b)
    assert diff.choices == {"data/augmentation": ("flip_crop", "cutout8")}
    assert diff.keys == {"seed": (1, 2), "data.seed": (1, 2), "data.train_transforms.0.p": (0.5, 0.3),
                         "trainer.max_epochs": (3, 4), "callbacks.ema": (ABSENT, {"decay": 0.99})}
    groups = config_diff(base, other, choices_a, choices_b, ignore_seed=True)
    assert set(groups.keys) == {"data.train_transforms.0.p", "trainer.max_epochs", "callbacks.ema"}
    assert groups.to_dict()["keys"]["callbacks.ema"] == {"b": {"decay": 0.99}}
    assert not config_diff(base, base, choices_a, choices_a) and config_diff(base, None, None, None).notes


@pytest.mark.parametrize("kwargs, message", [
    ({"a": None, "b": "x"}, "give both sides"),
    ({"a": "x", "b": "y", "alpha": 1.5}, "alpha=1.5 must be in (0, 1)"),
    ({"a": "x", "b": "y", "gallery_size": 0}, "gallery_size=0 must be at least 1"),
    ({"a": "x", "b": "y", "bootstrap": BootstrapSettings(resamples=10)}, "bootstrap.resamples=10 is too few"),
])
def test_bad_settings_raise_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CompareConfig(**kwargs)


# ---- whole comparisons of runs trained on the fixture

def train_job(root: Path, overrides: list[str], job_dir: Path) -> Path:
    """Train a run into ``job_dir`` and write the .hydra/ files train.py's Hydra would: the task
    overrides and the config-group choices of the composition."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra = compose(config_name="train", overrides=tiny_overrides(root) + overrides, return_hydra_config=True).hydra
    (job_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": hydra.runtime.choices}}}),
                   job_dir / ".hydra" / "hydra.yaml")
    OmegaConf.save(hydra.overrides.task, job_dir / ".hydra" / "overrides.yaml")
    from cifarlab.training.pipeline import train

    train(compose_train(tiny_overrides(root) + overrides, job_dir))
    return job_dir


@pytest.fixture(scope="module")
def sweeps(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two sweep dirs of seeds 0 and 1 (jobs 0, 1), one per augmentation: flip_crop and cutout8;
    one epoch of 10 steps on 100 fixture images each."""
    out = tmp_path_factory.mktemp("sweeps")
    for augmentation in ("flip_crop", "cutout8"):
        for job, seed in enumerate((0, 1)):
            train_job(cifar_root, [f"data/augmentation={augmentation}", f"seed={seed}", "data.subset=100",
                                   "trainer.max_epochs=1", "data.batch_size=10"], out / augmentation / str(job))
    return {name: out / name for name in ("flip_crop", "cutout8")}


def settings(out: Path, a, b, **kwargs) -> CompareConfig:
    return CompareConfig(a=a, b=b, paths=Paths(output_dir=str(out)), bootstrap=BootstrapSettings(resamples=999),
                         **kwargs)


@pytest.mark.slow
def test_two_runs_differing_in_augmentation(sweeps: dict[str, Path], tmp_path: Path) -> None:
    a, b = sweeps["flip_crop"] / "0", sweeps["cutout8"] / "0"
    results = compare(settings(tmp_path, str(a), str(b), gallery_size=6))
    diff = results["config_diff"]
    assert diff["choices"] == {"data/augmentation": {"a": "flip_crop", "b": "cutout8"}}
    assert list(diff["keys"]) == ["data.train_transforms"]  # the transforms that choice sets, nothing else
    assert [t["_target_"] for t in diff["keys"]["data.train_transforms"]["b"]][-1] == "albumentations.CoarseDropout"
    assert results["seeds"] is None and diff["notes"] == []

    run_a, run_b = TrainedRun(a), TrainedRun(b)
    images, labels = run_a.test_set()
    correct = [r.predict(images).argmax(1).numpy() == labels for r in (run_a, run_b)]
    paired = results["paired"]
    want = mcnemar(*correct)
    assert (paired["a_only"], paired["b_only"], paired["p_value"]) == (want.a_only, want.b_only, want.p_value)
    assert paired["acc_a"] == pytest.approx(run_a.train_metrics.test.acc, abs=1e-6)
    assert paired["bootstrap"]["low"] <= paired["delta"] <= paired["bootstrap"]["high"]
    assert results["verdict"] == paired["verdict"] == verdict(want.delta, want.p_value, "exact McNemar", 0.05)
    assert "predicted here with TrainedRun.predict" in results["a"]["predictions"]
    assert set(results["per_class_recall"]) == set(run_a.class_names)

    assert json.loads((tmp_path / "compare.json").read_text()) == results
    md = (tmp_path / "compare.md").read_text()
    for part in ("**Verdict: ", "choice `data/augmentation` | `\"flip_crop\"` | `\"cutout8\"`", "`data.train_transforms`",
                 "Exact McNemar", "bootstrap interval", "## Per-class recall", "## Where A and B disagree"):
        assert part in md, part
    shown = results["gallery"]["shown"]
    assert len(shown) == min(6, paired["disagree"]) and shown, "the fixture runs should disagree somewhere"
    rows = -(-len(shown) // 5)
    assert Image.open(tmp_path / GALLERY).size == (min(5, len(shown)) * 160, round((rows * 2.2 + 0.4) * 100))


@pytest.mark.slow
def test_a_run_against_itself_is_no_detectable_difference(sweeps: dict[str, Path], tmp_path: Path) -> None:
    run = str(sweeps["flip_crop"] / "1")
    results = compare(settings(tmp_path, run, run))
    paired = results["paired"]
    assert (paired["delta"], paired["p_value"], paired["disagree"]) == (0.0, 1.0, 0)
    assert results["verdict"] == "no detectable difference (p = 1, exact McNemar, α = 0.05)"
    assert results["config_diff"]["choices"] == {} and results["config_diff"]["keys"] == {}
    assert results["gallery"] == {"file": None, "shown": []} and not (tmp_path / GALLERY).exists()
    assert "Nothing: the two configs are the same." in (tmp_path / "compare.md").read_text()


@pytest.mark.slow
def test_evaluate_py_predictions_are_used_and_checked(sweeps: dict[str, Path], tmp_path: Path) -> None:
    a, b = tmp_path / "a", sweeps["cutout8"] / "1"
    shutil.copytree(sweeps["flip_crop"] / "0", a)  # a copy: its eval/ must not reach the other tests
    computed = compare(settings(tmp_path / "computed", str(a), str(b)))
    write_report(TrainedRun(a), a / "eval", QUICK_REPORT)  # found in <run>/eval/
    write_report(TrainedRun(b), tmp_path / "b_eval", QUICK_REPORT)
    found = compare(settings(tmp_path / "found", str(a), str(b), b_predictions=str(tmp_path / "b_eval")))
    assert found["a"]["predictions"].startswith("evaluate.py's predictions.npz in")
    assert found["b"]["predictions"].startswith("evaluate.py's predictions.npz in")
    assert found["paired"] == computed["paired"]
    with pytest.raises(DataError, match=r"b_predictions=.*is not a report \(cifarlab.eval/3\) of"):
        compare(settings(tmp_path / "wrong", str(a), str(b), b_predictions=str(a / "eval")))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # a group of equal accuracies
@pytest.mark.parametrize("as_list", [False, True])
def test_seed_groups_get_welchs_test_over_their_accuracies(as_list: bool, sweeps: dict[str, Path],
                                                           tmp_path: Path) -> None:
    a, b = sweeps["flip_crop"], sweeps["cutout8"]
    sides = ([str(a / "0"), str(a / "1")], [str(b / "0"), str(b / "1")]) if as_list else (str(a), str(b))
    results = compare(settings(tmp_path, *sides))
    accs = [[json.loads((s / job / "metrics.json").read_text())["test"]["acc"] for job in ("0", "1")] for s in (a, b)]
    want = stats.ttest_ind(accs[1], accs[0], equal_var=False)
    seeds = results["seeds"]
    assert (seeds["a"]["acc"], seeds["b"]["acc"]) == (accs[0], accs[1])
    got = [np.nan if x is None else x for x in (seeds["t"], seeds["p_value"])]  # null: no variance in either group
    np.testing.assert_allclose(got, [want.statistic, want.pvalue], equal_nan=True)
    assert "Welch's t-test over seeds, n = 2 and 2" in results["verdict"]
    assert results["config_diff"]["choices"] == {"data/augmentation": {"a": "flip_crop", "b": "cutout8"}}
    assert list(results["config_diff"]["keys"]) == ["data.train_transforms"]  # seeds left out
    assert results["a"]["paired_run"] == str(a / "0")  # McNemar on the first seed of each
    assert "## Seeds (Welch's t-test)" in (tmp_path / "compare.md").read_text()


@pytest.mark.slow
def test_groups_that_are_not_seed_groups_are_refused(sweeps: dict[str, Path], tmp_path: Path) -> None:
    a, b = sweeps["flip_crop"], sweeps["cutout8"]
    with pytest.raises(CifarlabError, match="differ in more than their seed"):
        compare(settings(tmp_path, [str(a / "0"), str(b / "1")], str(b)))
    mixed = tmp_path / "mixed"
    for name, job in (("0", a / "0"), ("1", b / "0")):  # one sweep of two configurations
        shutil.copytree(job, mixed / name, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    with pytest.raises(CifarlabError, match="holds 2 configurations .* not one seed group"):
        compare(settings(tmp_path, str(mixed), str(b)))


@pytest.mark.slow
def test_compare_py_writes_the_report(sweeps: dict[str, Path], tmp_path: Path) -> None:
    a, b = sweeps["flip_crop"] / "0", sweeps["cutout8"] / "0"
    result = run_script("compare.py", f"a={a}", f"b={b}", "bootstrap.resamples=999", "alpha=0.01",
                        f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert {"compare.md", "compare.json", GALLERY} <= {p.name for p in tmp_path.iterdir()}
    results = json.loads((tmp_path / "compare.json").read_text())
    assert results["alpha"] == 0.01 and results["verdict"].split(" (")[0] in result.stdout, result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    ((), "error: give both sides"),
    (("a=nowhere", "b=nowhere"), "error: a=nowhere is not a folder"),
    (("a={empty}", "b={empty}"), "error: a={empty} holds neither a run"),
])
def test_compare_py_refuses_bad_input_with_exit_status_2(args: tuple, message: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    message = message.format(empty=empty)
    result = run_script("compare.py", *(a.format(empty=empty) for a in args), f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
