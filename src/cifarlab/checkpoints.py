"""Finding and loading the checkpoints that ``train.py`` writes."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from cifarlab.errors import CifarlabError
from cifarlab.module import ImageClassifier


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.ckpt`` file as given, or for a run dir the checkpoint that ``train.py`` tested.

    The run dir's ``metrics.json`` names it (``last.ckpt`` when the run validated on the test
    set, the best-on-val one with a held-out split); without it, ``checkpoints/last.ckpt``.

    Raises:
        CifarlabError: nothing at ``path``, or a run dir without checkpoints.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CifarlabError(f"ckpt_path={path} does not exist: give a .ckpt file or a run dir of train.py "
                            "(outputs/<task>/runs/<time>_<id>)")
    metrics = path / "metrics.json"
    if metrics.is_file():
        tested = json.loads(metrics.read_text()).get("tested_checkpoint", {}).get("path")
        if tested and Path(tested).is_file():
            return Path(tested)
    last = path / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise CifarlabError(f"{path} holds no checkpoint (no metrics.json naming one, no checkpoints/last.ckpt): "
                        "was the run stopped before its first epoch ended, or run with trainer.fast_dev_run?")


def read_checkpoint(path: Path) -> dict:
    """The checkpoint dict, loaded with ``weights_only=True``.

    Raises:
        CifarlabError: unreadable, truncated or not a cifarlab checkpoint.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise CifarlabError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                            "pick another .ckpt from the run's checkpoints/ folder") from err
    if not isinstance(ckpt, dict) or "net" not in ckpt.get("hyper_parameters", {}):
        raise CifarlabError(f"{path} was not written by cifarlab's train.py (no network spec in its hyperparameters)")
    return ckpt


def load_classifier(path: str | Path) -> ImageClassifier:
    """The :class:`ImageClassifier` of a checkpoint or run dir, in eval mode, fp32, on the CPU.

    Raises:
        CifarlabError: see :func:`resolve_checkpoint` and :func:`read_checkpoint`; weights that
            do not fit the network the hyperparameters describe (a damaged or edited checkpoint).
    """
    ckpt_path = resolve_checkpoint(path)
    target = read_checkpoint(ckpt_path)["hyper_parameters"]["net"]["_target_"].rsplit(".", 1)[-1]
    try:
        model = ImageClassifier.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    except RuntimeError as err:  # load_state_dict: missing keys / size mismatch
        raise CifarlabError(f"the weights in {ckpt_path} do not fit the {target} its hyperparameters describe "
                            f"({str(err).splitlines()[0]}); the checkpoint is damaged or was edited") from err
    return model.float().eval()


def data_root(path: str | Path) -> str | None:
    """The ``data.root`` the checkpoint's run trained with (Lightning stores the datamodule's
    hyperparameters in the checkpoint), or ``None``."""
    ckpt = read_checkpoint(resolve_checkpoint(path))
    return ckpt.get("datamodule_hyper_parameters", {}).get("root")
