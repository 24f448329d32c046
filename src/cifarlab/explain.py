"""Explanations of a trained classifier: predictions, misclassified images and GradCAM.

GradCAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization" (ICCV 2017), computed with the ``grad-cam`` package
(jacobgil/pytorch-grad-cam).
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

# The last conv block of each model of cifarlab.models: GradCAM's default target layer.
DEFAULT_TARGET_LAYERS = {"CustomResNet": "layer3", "ResNet18": "layer4"}


def layer_names(net: nn.Module) -> list[str]:
    """Names of the network's blocks that output (N, C, H, W) feature maps: its top-level
    children and their children (``layer1``, ``layer1.res``, ...), heads and pools excluded."""
    names = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Identity)):
            continue
        names.append(name)
        names += [f"{name}.{sub}" for sub, grandchild in child.named_children()
                  if not isinstance(grandchild, (nn.Identity, nn.ReLU))]
    return names


def default_target_layer(net: nn.Module) -> str:
    """The last conv block: ``layer3`` for ResNet-9, ``layer4`` for ResNet-18."""
    return DEFAULT_TARGET_LAYERS.get(type(net).__name__, layer_names(net)[-1])


def find_layer(net: nn.Module, name: str) -> nn.Module:
    """The block called ``name``.

    Raises:
        ConfigError: ``name`` is not one of :func:`layer_names`; the message lists them.
    """
    valid = layer_names(net)
    if name not in valid:
        raise ConfigError(f"target_layer={name!r} is not a block of {type(net).__name__}; valid names: {', '.join(valid)}")
    return net.get_submodule(name)


def predict_proba(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N, C) float32 of normalised images (N, 3, 32, 32) float32."""
    model.eval()
    with torch.inference_mode():
        chunks = [torch.softmax(model(batch).float(), dim=1) for batch in images.split(batch_size)]
    return torch.cat(chunks).numpy()


def misclassified(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices (in order) of the images whose arg-max class differs from the label."""
    return np.flatnonzero(probs.argmax(axis=1) != np.asarray(labels))


def denormalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the normalisation: (N, 3, H, W) float -> (N, H, W, 3) float32 RGB in [0, 1]."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    rgb = images.detach().float().cpu() * std_t + mean_t
    return rgb.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def gradcam(net: nn.Module, images: torch.Tensor, target_layer: str, targets: Sequence[int] | None = None,
            batch_size: int = 64) -> np.ndarray:
    """GradCAM maps (N, 32, 32) float32 in [0, 1] for normalised images (N, 3, 32, 32) float32.

    Computed on an fp32 copy of ``net`` (so hooks never touch the trained module, and a
    channels_last or bf16 network gives the same maps), in batches, with the ``GradCAM``
    context manager releasing its hooks. ``targets`` are the classes to explain per image
    (``None``: the predicted class).

    Raises:
        ConfigError: unknown ``target_layer`` (the message lists the valid names).
    """
    find_layer(net, target_layer)
    cam_net = copy.deepcopy(net).float().to(memory_format=torch.contiguous_format).eval()
    layer = cam_net.get_submodule(target_layer)
    maps = []
    with GradCAM(model=cam_net, target_layers=[layer]) as cam:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].float().contiguous()
            batch_targets = None if targets is None else [
                ClassifierOutputTarget(int(t)) for t in targets[start:start + batch_size]]
            maps.append(cam(input_tensor=batch, targets=batch_targets))
    return np.clip(np.concatenate(maps), 0.0, 1.0).astype(np.float32)


def overlay(rgb: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Heat map of ``cam`` (h, w) in [0, 1] over ``rgb`` (H, W, 3) float in [0, 1] -> (H, W, 3) uint8.

    ``image_weight`` is the image's opacity in [0, 1] (1 shows only the image). The map is
    resized to (H, W) bilinearly.

    Raises:
        ConfigError: ``image_weight`` outside [0, 1].
    """
    if not 0.0 <= image_weight <= 1.0:
        raise ConfigError(f"image_weight={image_weight} must be in [0, 1] (the image's opacity)")
    if cam.shape != rgb.shape[:2]:
        resized = torch.nn.functional.interpolate(torch.from_numpy(cam)[None, None].float(), size=rgb.shape[:2],
                                                  mode="bilinear", align_corners=False)
        cam = resized[0, 0].numpy()
    return show_cam_on_image(rgb.astype(np.float32), cam, use_rgb=True, image_weight=image_weight)
