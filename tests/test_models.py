"""Model zoo: exact parameter counts and output shapes for every model and norm."""
from __future__ import annotations

import pytest
import torch

from cifarlab.models import CustomResNet, ResNet18
from cifarlab.models.norm import NORMS, make_norm

EXPECTED = {CustomResNet: 6_573_120, ResNet18: 11_173_962}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("model_cls", [CustomResNet, ResNet18])
def test_parameter_count_and_output_shape(model_cls: type, norm: str) -> None:
    model = model_cls(num_classes=10, norm=norm)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED[model_cls]
    out = model.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and out.dtype == torch.float32


def test_norm_layers_are_what_the_name_says() -> None:
    assert isinstance(make_norm("batch", 64), torch.nn.BatchNorm2d)
    assert make_norm("group", 64, num_groups=8).num_groups == 8
    assert make_norm("layer", 64).num_groups == 1


def test_bad_norm_names_the_choices() -> None:
    with pytest.raises(ValueError, match="batch, group, layer"):
        CustomResNet(norm="instance")
    with pytest.raises(ValueError, match="does not divide"):
        CustomResNet(norm="group", num_groups=7)
