"""Model zoo: exact parameter counts and output shapes for every model and norm."""
from __future__ import annotations

import math

import pytest
import torch

from cifarlab.models import AirbenchNet, CustomResNet, ResNet18
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


def test_airbench_net_counts_shape_and_whitening() -> None:
    model = AirbenchNet()
    assert sum(p.numel() for p in model.parameters()) == 1_972_792
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_971_352
    images = torch.randn(64, 3, 32, 32) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    model.init_whitening(images)
    patches = torch.nn.functional.conv2d(images, model.whiten.weight[:12])
    covariance = patches.permute(1, 0, 2, 3).reshape(12, -1).cov()
    assert torch.allclose(covariance.diagonal(), torch.ones(12), atol=0.05)  # whitened: unit variance per filter
    assert model.eval()(images[:2]).shape == (2, 10)


def test_airbench_param_groups_scale_bias_lr_and_cover_every_trainable_parameter() -> None:
    model = AirbenchNet()
    groups = model.param_groups()
    assert groups[0]["lr_scale"] == 64.0 and groups[0]["weight_decay_scale"] == 1 / 64
    covered = [id(p) for g in groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in model.parameters() if p.requires_grad)


def test_resnet9_initial_loss_is_near_ln_10() -> None:
    torch.manual_seed(0)
    logits = CustomResNet().train()(torch.randn(64, 3, 32, 32))
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 10, (64,)))
    assert abs(loss.item() - math.log(10)) < 0.3


@pytest.mark.parametrize("pool_before_norm,expected", [(True, torch.nn.MaxPool2d), (False, torch.nn.BatchNorm2d)])
def test_resnet9_pool_position(pool_before_norm: bool, expected: type) -> None:
    model = CustomResNet(pool_before_norm=pool_before_norm)
    stage = list(model.layer1.conv)
    assert isinstance(stage[1], expected) and len(stage) == 4
    assert sum(p.numel() for p in model.parameters()) == EXPECTED[CustomResNet]
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_airbench_whitening_runs_in_fp32_under_bf16_autocast() -> None:
    model = AirbenchNet().eval()
    seen = []
    model.whiten.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    model.block1[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(2, 3, 32, 32))
    assert seen == [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("model_cls", [CustomResNet, ResNet18, AirbenchNet])
def test_every_network_names_its_gradcam_layer_and_feature_blocks(model_cls: type) -> None:
    from cifarlab.reports.features import BlockOutputs
    from cifarlab.reports.gradcam import default_target_layer

    model = model_cls().eval()
    assert default_target_layer(model) == model_cls.gradcam_layer == model_cls.feature_blocks[-1]
    outputs = BlockOutputs(model)(torch.randn(2, 3, 32, 32))
    assert list(outputs) == list(model_cls.feature_blocks)
    assert min(outputs[model_cls.gradcam_layer].shape[-2:]) >= 3  # the last conv block's map, not a pooled 1x1
