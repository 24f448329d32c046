"""A trained run's model as a file other programs run (``export.py``): ONNX through torch's exporter
(``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``; checked with onnxruntime) or
TorchScript (``torch.jit.trace`` through Lightning's ``to_torchscript``). Either is the run's :class:`~cifarlab.module.ImageClassifier`
in fp32: uint8 images (N, 3, 32, 32), any N, in; float32 logits (N, C) out, the normalisation inside."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from cifarlab.errors import CifarlabError
from cifarlab.module import ImageClassifier
from cifarlab.runs.run import TrainedRun
from cifarlab.runs.rundir import write_json_atomic
from cifarlab.serving.config import ExportConfig, Format

SCHEMA = "cifarlab.export/1"
INPUT, OUTPUT = "images", "logits"  # the graph's input and output names (ONNX); the forward's argument
FILES = {Format.onnx: "model.onnx", Format.torchscript: "model.pt"}
CHECK_IMAGES = 8  # random images the written file must give the model's logits for (another batch size than traced)
TOLERANCE = 1e-4  # largest |logit difference| accepted from the written file, in logits
JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"  # torch 2.14's notice on every TorchScript call (the README says it)
# Lightning 2.6's notice on to_torchscript, which traces a LightningModule (torch.jit.trace alone trips on its
# unattached `trainer` property); the same deprecation as torch's
TO_TORCHSCRIPT_DEPRECATED = r"`LightningModule.to_torchscript` has been deprecated"


def export_onnx(model: ImageClassifier, example: torch.Tensor, path: Path) -> int:
    """Write ``model`` as ONNX to ``path`` (weights inside the file) with a dynamic batch dimension
    ``batch``; returns the opset. ``example``: a (n, 3, 32, 32) uint8 batch, n >= 2.

    Raises:
        CifarlabError: onnx or onnxscript is not installed.
    """
    try:
        import onnxscript  # noqa: F401  (torch's dynamo exporter builds the graph with it)
    except ImportError as err:
        raise CifarlabError("format=onnx needs onnx and onnxscript: pip install -e '.[onnx]'") from err
    program = torch.onnx.export(model, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes={INPUT: {0: torch.export.Dim("batch")}}, external_data=False,
                                verbose=False)
    return program.model.opset_imports[""]


def export_torchscript(model: ImageClassifier, example: torch.Tensor, path: Path) -> None:
    """Write ``model`` traced on ``example`` (n, 3, 32, 32) uint8 as TorchScript to ``path``
    (``torch.jit.load`` reads it; any batch size runs). torch 2.14 deprecates TorchScript in favour
    of torch.export; it remains the format libtorch (C++) loads."""
    with warnings.catch_warnings():
        # ImageClassifier.normalise's layout test (NCHW or NHWC) becomes a constant: the export takes NCHW only.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", JIT_DEPRECATED, FutureWarning)
        warnings.filterwarnings("ignore", TO_TORCHSCRIPT_DEPRECATED)
        torch.jit.save(model.to_torchscript(method="trace", example_inputs=example), str(path))  # Lightning's trace


def run_exported(path: Path, fmt: Format, images: np.ndarray) -> np.ndarray:
    """Logits (N, C) float32 of images (N, 3, 32, 32) uint8 from an exported file: onnxruntime
    (CPU) for ONNX, ``torch.jit.load`` for TorchScript.

    Raises:
        CifarlabError: onnxruntime is not installed (ONNX).
    """
    if fmt is Format.torchscript:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", JIT_DEPRECATED, FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")(torch.from_numpy(images)).numpy()
    try:
        import onnxruntime
    except ImportError as err:
        raise CifarlabError("checking an ONNX export needs onnxruntime: pip install -e '.[onnx]'") from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: images})[0]


def export_run(run: TrainedRun, fmt: Format, out: Path) -> dict:
    """Write ``run.model`` (a copy on the CPU, fp32) in format ``fmt`` into ``out``, check that the
    file gives the model's logits on :data:`CHECK_IMAGES` random images, and write ``export.json``
    beside it. Returns the contents of ``export.json`` (schema ``cifarlab.export/1``): the file,
    input and output names, shapes (``"batch"`` for the dynamic dimension) and dtypes, class
    names, ONNX opset (None for TorchScript), checkpoint path and sha256, and the check's result.

    Raises:
        CifarlabError: the format's optional packages are missing (see :func:`export_onnx`).
        RuntimeError: the written file's logits differ from the model's by more than :data:`TOLERANCE`.
    """
    model = copy.deepcopy(run.model).cpu().float().eval()  # the run's own model stays where it runs
    size = run.image_size
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=generator)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILES[fmt]
    opset = export_onnx(model, example, path) if fmt is Format.onnx else export_torchscript(model, example, path)
    images = torch.randint(0, 256, (CHECK_IMAGES, 3, size, size), dtype=torch.uint8, generator=generator)
    with torch.inference_mode():
        expected = model(images).numpy()
    difference = float(np.abs(run_exported(path, fmt, images.numpy()) - expected).max())
    if not difference <= TOLERANCE:
        raise RuntimeError(f"{path} gives logits up to {difference:.3g} away from the model's (more than "
                           f"{TOLERANCE:g}): the exporter changed the computation; please report it")
    info = {
        "schema": SCHEMA,
        "format": fmt.value,
        "file": path.name,
        "input": {"name": INPUT, "shape": ["batch", 3, size, size], "dtype": "uint8",
                  "layout": "NCHW, RGB, 0..255 (the normalisation is inside the model)"},
        "output": {"name": OUTPUT, "shape": ["batch", len(run.class_names)], "dtype": "float32"},
        "class_names": run.class_names,
        "opset": opset,
        "model": run.net_name,
        "checkpoint": {"path": str(run.ckpt_path.resolve()), "sha256": run.sha256},
        "torch": torch.__version__,
        "check": {"images": CHECK_IMAGES, "max_abs_diff": difference},
    }
    write_json_atomic(out / "export.json", info)
    return info


def export(cfg: ExportConfig) -> dict:
    """``export.py``: :func:`export_run` of ``cfg.ckpt_path`` into ``cfg.paths.output_dir``.

    Raises:
        CifarlabError: see :class:`TrainedRun` and :func:`export_run`.
    """
    run = TrainedRun(cfg.ckpt_path, precision="32-true", device="cpu")
    out = Path(cfg.paths.output_dir)
    info = export_run(run, cfg.format, out)
    Console().print(f"{run.net_name} exported as {cfg.format.value}: {out / info['file']} "
                    f"(uint8 (N, 3, {run.image_size}, {run.image_size}) in, float32 logits (N, {len(run.class_names)}) out), "
                    f"export.json beside it", highlight=False, soft_wrap=True)
    return info
