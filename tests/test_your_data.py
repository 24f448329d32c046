"""Your own images (data=imagefolder), CIFAR-100 and the converter: loading, the cache, bad input, and a
run on an image folder through training, resume, evaluate, the app, predict and export."""
from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.data.decode import to_cifar
from cifarlab.data import ImageDataModule, load_arrays, load_cifar10
from cifarlab.data.sources import cache_path, decode_image, folder_fingerprint, image_folder_listing, load_image_folder
from cifarlab.data.to_folders import to_folders
from cifarlab.errors import ConfigError, DataError
from conftest import compose_train, run_script, tiny_overrides
from test_lr_find_resume import unbroken_then_killed_and_resumed

CLASSES = ["circle", "square", "stripes"]  # sorted, as the folders are read
FORMATS = [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("bmp", "BMP")]
EXIF_FILE = "train/circle/rotated.jpg"
BROKEN_FILE = "train/square/broken.png"


def class_image(label: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A learnable (height, width, 3) uint8 image of class ``label``: its own colour and pattern, plus noise."""
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    pattern = [((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1), (abs(xx - 0.5) < 0.25) & (abs(yy - 0.5) < 0.25),
               (xx * 8).astype(int) % 2 == 0][label]
    colour = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220]][label])
    pixels = 30 + pattern[..., None] * colour + rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_tree(root: Path, per_class: dict[str, int], seed: int = 0, broken: bool = False) -> Path:
    """An ImageFolder tree under ``root``: ``per_class[split]`` images per class in each split, in turn PNG,
    JPEG, WebP and BMP, of sizes from 20 to 60 pixels a side (some not square); one JPEG in train/ with an
    EXIF rotation, and with ``broken`` a truncated PNG. Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                suffix, fmt = FORMATS[i % len(FORMATS)]
                width, height = int(rng.integers(20, 61)), int(rng.integers(20, 61))
                Image.fromarray(class_image(label, width, height, rng)).save(folder / f"{i:03d}.{suffix}", fmt)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: stored rotated, to be turned 90 degrees clockwise for display
    upright = Image.fromarray(class_image(0, 40, 24, rng))
    upright.transpose(Image.Transpose.ROTATE_90).save(root / EXIF_FILE, "JPEG", quality=95, exif=exif)
    if broken:
        buffer = io.BytesIO()
        Image.fromarray(class_image(1, 32, 32, rng)).save(buffer, "PNG")
        (root / BROKEN_FILE).write_bytes(buffer.getvalue()[:200])
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what "nothing written into the data folder" compares."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred images in 3 classes: 80 training and 20 test images per class, mixed formats and sizes."""
    return write_tree(tmp_path_factory.mktemp("images"), {"train": 80, "test": 20})


def test_an_image_folder_loads_sorted_classes_of_every_format_upright_and_writes_nothing_there(tree: Path) -> None:
    before = snapshot(tree)
    arrays = load_image_folder(tree)
    assert arrays.class_names == CLASSES and arrays.val_images is None
    assert arrays.train_images.shape == (241, 32, 32, 3)  # 80 per class and the rotated JPEG
    assert arrays.train_images.dtype == np.uint8 and arrays.train_labels.dtype == np.int64
    assert np.bincount(arrays.train_labels).tolist() == [81, 80, 80] and np.bincount(arrays.test_labels).tolist() == [20] * 3
    assert arrays.checksum.status == "unchecked" and arrays.checksum.skipped == []
    # the EXIF-rotated JPEG is decoded upright: a 40 x 24 landscape, as its upright original
    stored = Image.open(tree / EXIF_FILE)
    assert stored.size == (24, 40)
    upright = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    expected = to_cifar(Image.fromarray(upright))
    assert np.abs(decode_image(tree / EXIF_FILE, 32).astype(int) - expected).mean() < 2
    assert snapshot(tree) == before
    listing = image_folder_listing(tree)
    assert cache_path(folder_fingerprint(tree, listing, 32)).is_file()


def test_the_cache_is_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "images", {"train": 4, "test": 2})
    first = load_image_folder(root)
    key = folder_fingerprint(root, image_folder_listing(root), 32)
    assert folder_fingerprint(root, image_folder_listing(root), 16) != key  # the size is in the key
    changed = root / "train" / "square" / "000.png"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same bytes, new mtime
    touched = folder_fingerprint(root, image_folder_listing(root), 32)
    assert touched != key
    np.testing.assert_array_equal(load_image_folder(root).train_images, first.train_images)
    assert cache_path(touched).is_file()
    Image.new("RGB", (32, 32), (255, 255, 0)).save(changed)  # rewritten: new pixels
    rewritten = load_image_folder(root)
    assert folder_fingerprint(root, image_folder_listing(root), 32) not in (key, touched)
    (index,) = np.flatnonzero((rewritten.train_images != first.train_images).any(axis=(1, 2, 3)))  # one image changed
    assert (rewritten.train_images[index] == [255, 255, 0]).all() and rewritten.train_labels[index] == 1
    assert rewritten.checksum.fingerprint != first.checksum.fingerprint


def test_a_val_folder_is_the_validation_split_and_val_size_must_be_0(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "images", {"train": 8, "val": 3, "test": 2})
    dm = ImageDataModule(root=str(root), source="imagefolder", batch_size=4, num_workers=0, download=False)
    dm.setup("fit")
    assert len(dm.val_set) == 9 and len(dm.train_set) == 25 and len(dm.test_set) == 6
    held = ImageDataModule(root=str(root), source="imagefolder", batch_size=4, num_workers=0, val_size=5)
    with pytest.raises(ConfigError, match="has a val/ folder, which is the validation split: set data.val_size=0"):
        held.setup("fit")


def write_cifar100(root: Path, per_class_train: int = 2, per_class_test: int = 1) -> tuple[Path, np.ndarray]:
    """``root/cifar-100-python/{train,test,meta}`` as torchvision's CIFAR-100 holds them; returns root and the
    fine labels of the training pickle."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    labels = {}
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        fine = rng.permutation(np.repeat(np.arange(100), per_class))
        labels[split] = fine
        entry = {"filenames": [f"{i}.png" for i in range(len(fine))], "fine_labels": fine.tolist(),
                 "coarse_labels": (fine // 5).tolist(), "data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)}
        (folder / split).write_bytes(pickle.dumps(entry))
    names = [f"fine_{i:02d}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": [f"c{i}" for i in range(20)]}))
    return root, labels["train"]


def test_cifar100_loads_its_100_fine_labels_and_names(tmp_path: Path) -> None:
    root, fine = write_cifar100(tmp_path)
    arrays = load_arrays(root, "cifar100")
    assert len(arrays.class_names) == 100 and arrays.class_names[7] == "fine_07"
    np.testing.assert_array_equal(arrays.train_labels, fine)
    assert arrays.train_images.shape == (200, 32, 32, 3) and arrays.test_images.shape == (100, 32, 32, 3)
    assert arrays.checksum.status == "mismatch" and set(arrays.checksum.mismatched) == {"train", "test", "meta"}
    dm = ImageDataModule(root=str(root), source="cifar100", batch_size=10, num_workers=0, download=False)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.class_names) == 100
    with pytest.raises(DataError, match="CIFAR-100 not found"):
        load_arrays(tmp_path / "nowhere", "cifar100")


def test_the_converter_writes_cifar10_as_an_image_folder_of_the_same_pixels(cifar_root: Path, tmp_path: Path) -> None:
    out = to_folders(cifar_root, tmp_path / "folders")
    cifar = load_cifar10(cifar_root)
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(cifar.class_names)
    first_cat = int(np.flatnonzero(cifar.test_labels == cifar.class_names.index("cat"))[0])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "test" / "cat" / f"{first_cat:05d}.png")),
                                  cifar.test_images[first_cat])
    folder = load_image_folder(out)
    assert folder.class_names == sorted(cifar.class_names) and len(folder.train_images) == len(cifar.train_images)
    with pytest.raises(DataError, match="exists and is not an empty folder"):
        to_folders(cifar_root, out)


def bad_tree(tmp_path: Path, case: str) -> Path:
    """An image folder with one defect."""
    root = tmp_path / "images"
    if case in ("missing root",):
        return root
    root.mkdir()
    if case == "empty root":
        return root
    write_tree(root, {"train": 3, "test": 1}, broken=case == "truncated file")
    if case == "class folder without images":
        (root / "train" / "zebra").mkdir()
        (root / "test" / "zebra").mkdir()
    elif case == "class sets differ":
        (root / "test" / "stripes").rename(root / "test" / "zigzag")
    elif case == "one class":
        for split in ("train", "test"):
            for name in CLASSES[1:]:
                for file in (root / split / name).iterdir():
                    file.unlink()
                (root / split / name).rmdir()
    return root


BAD_CASES = {
    "missing root": "is not a folder",
    "empty root": "is empty",
    "class folder without images": "has class folders without images (zebra)",
    "truncated file": f"cannot be read as images: {BROKEN_FILE}",
    "class sets differ": "only in train/: ['stripes']; only in test/: ['zigzag']",
    "one class": "has 1 class folder(s) (circle)",
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_a_data_error_naming_it_and_writes_nothing_there(case: str, tmp_path: Path) -> None:
    root = bad_tree(tmp_path, case)
    before = snapshot(root) if root.is_dir() else None
    with pytest.raises(DataError) as err:
        load_image_folder(root)
    assert BAD_CASES[case] in str(err.value), str(err.value)
    assert (snapshot(root) if root.is_dir() else None) == before


def test_a_bad_file_with_skip_is_left_out_logged_and_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = bad_tree(tmp_path, "truncated file")
    dm = ImageDataModule(root=str(root), source="imagefolder", batch_size=4, num_workers=0, on_bad_image="skip")
    dm.setup("fit")
    assert dm.checksum.to_dict()["skipped"] == [BROKEN_FILE] and len(dm.train_set) == 3 * 3 + 1
    assert BROKEN_FILE in caplog.text
    with pytest.raises(DataError, match=BROKEN_FILE):  # the cache remembers the file, and error still refuses it
        load_image_folder(root, on_bad_image="error")


def test_unknown_source_and_bad_image_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="data.source='mnist' is not one of"):
        ImageDataModule(source="mnist")
    with pytest.raises(ConfigError, match="data.on_bad_image='ignore'"):
        ImageDataModule(source="imagefolder", on_bad_image="ignore")
    with pytest.raises(ConfigError, match="cifar10's images are 32 x 32"):
        ImageDataModule(image_size=64)
    with pytest.raises(ConfigError, match="the networks of conf/model take 32 x 32 images"):
        ImageDataModule(source="imagefolder", image_size=64)


def test_the_loader_resizes_to_any_image_size(tree: Path) -> None:
    arrays = load_image_folder(tree, image_size=16)
    assert arrays.train_images.shape == (241, 16, 16, 3) and arrays.test_images.shape == (60, 16, 16, 3)


@pytest.mark.slow  # starts a process
def test_train_py_exits_2_naming_the_bad_folder(tmp_path: Path) -> None:
    root = bad_tree(tmp_path, "class sets differ")
    before = snapshot(root)
    proc = run_script("train.py", "data=imagefolder", f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error:" in proc.stderr and "only in test/: ['zigzag']" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(root) == before


def folder_overrides(root: Path) -> list[str]:
    return ["data=imagefolder", *tiny_overrides(root), "data.on_bad_image=skip", "model.tta=none"]


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tree`'s images and one truncated file, for runs with ``data.on_bad_image=skip``."""
    return write_tree(tmp_path_factory.mktemp("images_broken"), {"train": 80, "test": 20}, broken=True)


@pytest.mark.slow  # trains
@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_a_run_on_an_image_folder_evaluates_serves_predicts_and_exports_with_its_classes(
        augment_on: str, broken_tree: Path, tmp_path: Path) -> None:
    from cifarlab.app.explorer import Explorer
    from cifarlab.reports.config import Paths, ReportSettings, RobustnessSettings
    from cifarlab.reports.evaluate import write_report
    from cifarlab.runs.run import TrainedRun
    from cifarlab.serving.config import Format, PredictConfig
    from cifarlab.serving.export import export_run
    from cifarlab.serving.predict import predict
    from cifarlab.training.pipeline import train

    before = snapshot(broken_tree)
    out = tmp_path / "run"
    result = train(compose_train(folder_overrides(broken_tree) + [
        f"data.augment_on={augment_on}", "trainer.max_steps=1", "trainer.max_epochs=1"], out))
    assert result.global_step == 1 and result.test.images == 60 and result.dataset.startswith("image folder")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["checksum"]["skipped"] == [BROKEN_FILE]
    assert "num_classes: 3" in (out / "config.yaml").read_text()
    run = TrainedRun(out, precision="32-true")
    assert run.class_names == CLASSES and run.source == "imagefolder" and run.net.fc.out_features == 3
    report = write_report(run, tmp_path / "eval", ReportSettings(num_misclassified=1,
                                                                 robustness=RobustnessSettings(enabled=False)))
    assert list(report["per_class"]) == CLASSES and np.asarray(report["confusion_matrix"]).shape == (3, 3)
    assert report["test"]["acc"] == pytest.approx(result.test.acc)
    assert "3 classes of image folder" in (out / "MODEL_CARD.md").read_text()
    image = broken_tree / "test" / "stripes" / "000.png"
    assert set(Explorer(run).predict(str(image), 3)) == set(CLASSES)
    predicted = predict(PredictConfig(ckpt_path=str(out), inputs=[str(image)], paths=Paths(output_dir=str(tmp_path / "p"))))
    assert predicted["predicted"] == 1
    assert (tmp_path / "p" / "predictions.csv").read_text().split("\n")[1].split(",")[1] in CLASSES
    info = export_run(run, Format.torchscript, tmp_path / "export")
    assert info["class_names"] == CLASSES and info["output"]["shape"] == ["batch", 3]
    assert snapshot(broken_tree) == before


@pytest.mark.slow  # starts processes
def test_an_image_folder_run_killed_mid_epoch_resumes_to_the_unbroken_weights(tree: Path, tmp_path: Path) -> None:
    overrides = [*folder_overrides(tree), "data.subset=100", "trainer.max_epochs=2", "data.augment_on=device"]
    run_dir, killed_at = unbroken_then_killed_and_resumed(overrides, tmp_path)
    weights = [torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
               for d in (run_dir, tmp_path / "unbroken")]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0, msg=f"{key} after {killed_at}")


def test_the_held_out_split_of_an_image_folder_holds_every_class(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for split, n in (("train", 40), ("test", 4)):
        for k, name in enumerate(("ant", "bee", "cat")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32), (80 * k, i, 0)).save(root / split / name / f"{i:03d}.png")
    arrays = load_image_folder(root)
    assert sorted(np.unique(arrays.train_labels[-30:])) == [0, 1, 2]  # data.val_size=30 holds out all three
    assert sorted(np.unique(arrays.train_labels[:30])) == [0, 1, 2]   # data.subset=30 trains on all three
    np.testing.assert_array_equal(np.bincount(arrays.train_labels), [40, 40, 40])
