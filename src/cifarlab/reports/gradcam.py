"""Where a classifier looks: GradCAM maps and their overlays on the image.

GradCAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization" (ICCV 2017), computed with the ``grad-cam`` package (jacobgil/pytorch-grad-cam).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from cifarlab.errors import ConfigError
from cifarlab.models.base import gradcam_layer, top_level_blocks
from cifarlab.reports.figures import upscale
from cifarlab.module import ImageClassifier

def layer_names(net: nn.Module) -> list[str]:
    """The blocks of ``net`` that output (N, C, H, W) feature maps: its top-level blocks
    (:func:`cifarlab.models.base.top_level_blocks`) and their children (``layer1``, ``layer1.res``, ...)."""
    children = dict(net.named_children())
    return [n for name in top_level_blocks(net) for n in [name] + [
        f"{name}.{sub}" for sub, grandchild in children[name].named_children() if not isinstance(grandchild, (nn.Identity, nn.ReLU))]]


def default_target_layer(net: nn.Module) -> str:
    """The network's own ``gradcam_layer`` (its last conv block: ``layer3`` for ResNet-9, ``layer4``
    for ResNet-18, ``block3`` for airbench), else the last of :func:`layer_names`."""
    return gradcam_layer(net) or layer_names(net)[-1]


def check_layer(net: nn.Module, name: str) -> str:
    """``name`` if it is one of :func:`layer_names`.

    Raises:
        ConfigError: it is not; the message lists the valid names.
    """
    valid = layer_names(net)
    if name not in valid:
        raise ConfigError(f"target_layer={name!r} is not a block of {type(net).__name__}; "
                          f"valid names: {', '.join(valid)}")
    return name


def gradcam(model: ImageClassifier, images: np.ndarray, layer: str, targets: Sequence[int] | None = None,
            batch_size: int = 64) -> np.ndarray:
    """GradCAM maps (N, H, W) float32 in [0, 1] of images (N, H, W, 3) uint8 at block ``layer``.

    Computed in fp32 on a copy of ``model`` (its hooks never touch the shared model, which
    other threads may be running), in batches; ``targets`` are the classes to explain
    (None: the predicted ones).

    Raises:
        ConfigError: ``layer`` is not a block of the network (the message lists them).
    """
    check_layer(model.net, layer)
    cam_model = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    device = next(cam_model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)  # NCHW: GradCAM's map size
    maps = []
    with GradCAM(model=cam_model, target_layers=[cam_model.net.get_submodule(layer)]) as cam:
        for start in range(0, len(x), batch_size):
            end = start + batch_size
            chunk = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[start:end]]
            maps.append(cam(input_tensor=x[start:end], targets=chunk))
    return np.clip(np.concatenate(maps), 0, 1).astype(np.float32) if maps else np.zeros((0, 32, 32), np.float32)


def overlay(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5, size: int = 128) -> np.ndarray:
    """Heat map of ``cam`` (h, w) in [0, 1] over ``image`` (h, w, 3) uint8, both enlarged to
    ``size`` pixels (the image nearest, the map bilinear) -> (size, size, 3) uint8.
    ``image_weight`` in [0, 1] is the image's opacity (1 shows only the image)."""
    rgb = upscale(image[None], size)[0].astype(np.float32) / 255
    big = torch.nn.functional.interpolate(torch.from_numpy(cam)[None, None], size=(size, size), mode="bilinear")
    return show_cam_on_image(rgb, big[0, 0].numpy(), use_rgb=True, image_weight=image_weight)
