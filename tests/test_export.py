"""export.py: ONNX (read back with onnxruntime) and TorchScript (torch.jit.load) give TrainedRun.predict's
fp32 logits on 256 images, for ResNet-9 and airbench (custom BatchNorm, whitening conv); export.json;
the onnxruntime-only serving example of docs/serve_onnx.py; the command line."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.data.decode import read_upload
from cifarlab.data import load_cifar10
from cifarlab.runs.run import TrainedRun
from cifarlab.serving.config import Format
from cifarlab.serving.export import export_run
from conftest import ROOT, compose_train, run_script, tiny_overrides

EXAMPLES = ROOT / "src" / "cifarlab" / "examples"
try:  # the [onnx] extra
    import onnx
    import onnxruntime
except ImportError:
    onnx = onnxruntime = None
NEEDS_ONNX = pytest.mark.skipif(onnx is None, reason="onnx and onnxruntime are an extra: pip install -e '.[onnx]'")
FORMATS = [pytest.param(f, marks=NEEDS_ONNX) if f is Format.onnx else f for f in Format]


@pytest.fixture(scope="module")
def airbench_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An airbench run after one training step: whitening filters set, BatchNorm statistics moved."""
    from cifarlab.training.pipeline import train

    out = tmp_path_factory.mktemp("airbench_run")
    train(compose_train(tiny_overrides(cifar_root) + ["model=airbench", "data.subset=20", "trainer.max_epochs=1",
                                                    "trainer.max_steps=1"], out))
    return out


@pytest.fixture(scope="module")
def images(cifar_root: Path) -> np.ndarray:
    """256 fixture images (256, 3, 32, 32) uint8."""
    return np.ascontiguousarray(load_cifar10(cifar_root).train_images[:256].transpose(0, 3, 1, 2))


def run_file(path: Path, images: np.ndarray) -> np.ndarray:
    """Logits of images (N, 3, 32, 32) uint8 from model.onnx (onnxruntime) or model.pt (torch.jit.load)."""
    if path.suffix == ".onnx":
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            ["logits"], {"images": images})[0]
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
        return torch.jit.load(str(path))(torch.from_numpy(images)).numpy()


def check_parity(run_dir: Path, fmt: Format, images: np.ndarray, out: Path) -> dict:
    run = TrainedRun(run_dir, precision="32-true", device="cpu")
    info = export_run(run, fmt, out)
    logits, expected = run_file(out / info["file"], images), run.predict(images).numpy()
    assert logits.dtype == np.float32 and logits.shape == expected.shape == (256, 10)
    assert np.abs(logits - expected).max() <= 1e-4
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
    assert info["class_names"] == run.class_names and info["checkpoint"]["sha256"] == run.sha256
    assert info["input"] == {"name": "images", "shape": ["batch", 3, 32, 32], "dtype": "uint8",
                             "layout": "NCHW, RGB, 0..255 (the normalisation is inside the model)"}
    assert info["output"] == {"name": "logits", "shape": ["batch", 10], "dtype": "float32"}
    assert json.loads((out / "export.json").read_text()) == info
    return info


@pytest.mark.parametrize("fmt", FORMATS)
def test_resnet9_export_gives_run_predict_logits(trained_run: Path, images: np.ndarray, tmp_path: Path,
                                                 fmt: Format) -> None:
    info = check_parity(trained_run, fmt, images, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["export.json", info["file"]])  # weights inside


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_airbench_export_gives_run_predict_logits(airbench_run: Path, images: np.ndarray, tmp_path: Path,
                                                  fmt: Format) -> None:
    assert TrainedRun(airbench_run).net.whiten.weight.abs().sum() > 0  # the whitening conv is set, not zeros
    check_parity(airbench_run, fmt, images, tmp_path)


@NEEDS_ONNX
def test_onnx_graph_takes_uint8_with_a_dynamic_batch(trained_run: Path, tmp_path: Path) -> None:
    info = export_run(TrainedRun(trained_run, precision="32-true", device="cpu"), Format.onnx, tmp_path)
    model = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(model)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "images" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph_output.name == "logits" and graph_output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32]
    assert info["opset"] == next(o.version for o in model.opset_import if o.domain == "")
    assert info["check"]["images"] == 8 and info["check"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
@NEEDS_ONNX
def test_serve_onnx_example_gives_what_run_predict_gives(trained_run: Path, tmp_path: Path) -> None:
    run = TrainedRun(trained_run, precision="32-true", device="cpu")
    export_run(run, Format.onnx, tmp_path)
    image = tmp_path / "dog.jpg"  # a JPEG, not square: draft decoding and the centre crop matter
    Image.open(EXAMPLES / "dog.png").convert("RGB").resize((300, 200)).save(image, quality=90)
    proc = run_script("docs/serve_onnx.py", str(tmp_path), str(image))
    assert proc.returncode == 0, proc.stderr
    printed = [line.split() for line in proc.stdout.splitlines()]
    probs = torch.softmax(run.predict(read_upload(image, 40)[None]), dim=1)[0].topk(3)
    assert [name for name, _ in printed] == [run.class_names[i] for i in probs.indices]
    np.testing.assert_allclose([float(p) for _, p in printed], probs.values.numpy(), atol=1e-4)


@pytest.mark.slow
def test_cli_writes_the_model_and_export_json_and_exits_2_on_a_bad_checkpoint(trained_run: Path,
                                                                               tmp_path: Path) -> None:
    proc = run_script("export.py", f"ckpt_path={trained_run}", "format=torchscript", f"hydra.run.dir={tmp_path / 'ok'}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "ok" / "export.json").read_text())["file"] == "model.pt"
    assert (tmp_path / "ok" / "model.pt").stat().st_size > 1_000_000
    assert "deprecated" not in proc.stderr
    bad = run_script("export.py", f"ckpt_path={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "error:" in bad.stderr and "does not exist" in bad.stderr
    fmt = run_script("export.py", f"ckpt_path={trained_run}", "format=tflite", f"hydra.run.dir={tmp_path / 'fmt'}")
    assert fmt.returncode != 0 and "format" in fmt.stderr and "Traceback" not in fmt.stderr
