"""airbench94's network for the ``speedrun`` preset: K. Jordan, "94% on CIFAR-10 in 3.29 Seconds on a
Single GPU" (2024), https://github.com/KellerJordan/cifar10-airbench (legacy/airbench94.py).

Layout, as in its diagram:

    whiten  2x2 conv 3 -> 24, frozen, set from the training patches' covariance (ZCA-like), + GELU
    block1  conv 64  + max-pool + BN + GELU, conv 64  + BN + GELU
    block2  conv 256 + max-pool + BN + GELU, conv 256 + BN + GELU
    block3  conv 256 + max-pool + BN + GELU, conv 256 + BN + GELU
    head    MaxPool(3) -> flatten -> Linear(256, 10, bias=False) -> x logit_scale (1/9)

3x3 convs without bias, identity (Dirac) initialised on their first ``c_in`` filters; BatchNorm
with eps 1e-12, momentum 0.4 (airbench's 0.6 in its convention) and a frozen scale (only the bias
learns). 1,972,792 parameters, of which 1,971,352 train (the whitening filters and the BatchNorm scales are frozen).
"""
from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from cifarlab.config.ranges import LOGIT_SCALE, NUM_CLASSES, POSITIVE, UNIT, Range


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen scale of 1 (airbench: only the bias learns)."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 'same' conv without bias, its first ``c_in`` filters initialised to the identity (Dirac)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.weight.size(1)])


class ConvGroup(nn.Sequential):
    """conv + max-pool + BN + GELU, conv + BN + GELU: (N, c_in, H, W) -> (N, c_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float) -> None:
        super().__init__(Conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out, bn_momentum), nn.GELU(),
                         Conv(c_out, c_out), BatchNorm(c_out, bn_momentum), nn.GELU())


WIDTHS = Range(1, integer=True, nullable=True, meaning="channels of each conv group; null: the budget's choice")


class AirbenchNet(nn.Module):
    """airbench94's network for 32x32 RGB images.

    Args:
        num_classes: size of the output layer.
        widths: channels of the three conv groups (airbench94: 64, 256, 256).
        bn_momentum: PyTorch-convention BatchNorm momentum (airbench's 0.6 is 1 - 0.6 = 0.4 here).
        logit_scale: the logits' multiplier (airbench94's ``scaling_factor`` 1/9).
        bias_lr_scale: learning-rate multiplier of the BatchNorm biases (airbench's ``bias_scaler``, 64),
            whose weight decay is divided by it so the decay per step stays that of the other weights.

    Input (N, 3, 32, 32) float, normalised; output (N, num_classes) logits. Call
    :meth:`init_whitening` with training images before training. The whitening conv runs in fp32
    outside autocast: its filters scale by 1/sqrt(eigenvalue + 5e-4), up to ~45, and bf16's 8-bit
    mantissa would round the small components it exists to amplify (airbench94 runs it in fp16).
    :class:`cifarlab.training.callbacks.AirbenchWhitening` initialises it and freezes its bias after 30 % of training.
    """

    gradcam_layer = "block3"  # the last conv group: a 4x4 map (GradCAM's default target layer)
    feature_blocks = ("whiten", "block1", "block2", "block3")  # the app's feature maps, in forward order

    def __init__(self, num_classes: Annotated[int, NUM_CLASSES] = 10,
                 widths: Annotated[tuple[int, int, int], WIDTHS] = (64, 256, 256),
                 bn_momentum: Annotated[float, UNIT.means("PyTorch-convention BatchNorm momentum")] = 0.4,
                 logit_scale: Annotated[float, LOGIT_SCALE] = 1 / 9,
                 bias_lr_scale: Annotated[float, POSITIVE.means("the BatchNorm biases' learning-rate multiplier")] = 64.0,
                 ) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        nn.init.zeros_(self.whiten.bias)
        self.block1 = ConvGroup(24, widths[0], bn_momentum)
        self.block2 = ConvGroup(widths[0], widths[1], bn_momentum)
        self.block3 = ConvGroup(widths[1], widths[2], bn_momentum)
        self.pool = nn.MaxPool2d(3)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = logit_scale
        self.bias_lr_scale = bias_lr_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen 2x2 whitening filters from the patches of ``images`` (N, 3, 32, 32) float,
        normalised (airbench uses the first 5,000 training images): the covariance's eigenvectors
        scaled by 1/sqrt(eigenvalue + eps), and their negatives (24 filters)."""
        c, (h, w) = images.shape[1], self.whiten.weight.shape[2:]
        patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w).double()
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, c, h, w) / torch.sqrt(eigenvalues.view(-1, 1, 1, 1) + eps)
        self.whiten.weight.copy_(torch.cat((filters, -filters)).to(self.whiten.weight))

    def param_groups(self) -> list[dict]:
        """Optimiser groups: the BatchNorm biases at ``bias_lr_scale`` x the learning rate and
        1 / ``bias_lr_scale`` x the weight decay, the other trainable parameters as configured."""
        biases = [p for m in self.modules() if isinstance(m, BatchNorm) for p in (m.bias,)]
        ids = {id(p) for p in biases}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": biases, "lr_scale": self.bias_lr_scale, "weight_decay_scale": 1 / self.bias_lr_scale},
                {"params": rest}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):  # fp32 (see above)
            x = self.whiten(x.float())
        x = nn.functional.gelu(x)
        x = self.pool(self.block3(self.block2(self.block1(x))))
        return self.fc(torch.flatten(x, 1)) * self.logit_scale
