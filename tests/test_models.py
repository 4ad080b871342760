"""The model contract: registry, shapes for any input size, exact alignment, initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.models import FCN, build_model, list_models
from fcnseg.models.upsample import BilinearUpsample, bilinear_conv_transpose, resize_matrix

MODELS = list_models()
VGG_MODELS = [m for m in MODELS if m.endswith("_vgg16")]
SCORES = ("score_fr", "score_pool4", "score_pool3", "score_pool2")


def score_conv(model: nn.Module, name: str) -> nn.Conv2d | None:
    """The zero-initialised 1x1 scoring conv of a score layer (plain, or ending a small head)."""
    layer = getattr(model, name, None)
    return getattr(layer, "score", layer)


def test_registry_lists_the_vgg16_fcns_and_other_backbones() -> None:
    assert {"fcn32s_vgg16", "fcn16s_vgg16", "fcn8s_vgg16"} <= set(MODELS)
    assert {"fcn8s_resnet50", "fcn8s_efficientnet_lite0", "fcn8s_mobilenetv3_large_100"} <= set(
        MODELS
    )


def test_unknown_model_error_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="fcn8s_vgg16"):
        build_model("fcn9s_vgg16", num_classes=3)


@pytest.mark.parametrize("name", MODELS)
def test_contract_shape_backward_num_classes(name: str) -> None:
    model = build_model(name, num_classes=4)
    assert model.arch == {"name": name, "num_classes": 4}
    # Give the zero-initialised score layer weights so gradients reach the trunk.
    nn.init.normal_(score_conv(model, "score_fr").weight, std=0.01)
    image = torch.rand(2, 3, 45, 70)
    logits = model(image)
    assert logits.shape == (2, 4, 45, 70)
    F.cross_entropy(logits, torch.randint(0, 4, (2, 45, 70))).backward()
    first_conv = next(model.backbone.parameters())
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    for layer in SCORES:
        if hasattr(model, layer):
            assert score_conv(model, layer).weight.grad.abs().sum() > 0, layer


@pytest.fixture(scope="module")
def fcn8s() -> FCN:
    torch.manual_seed(0)
    model = build_model("fcn8s_vgg16", num_classes=3).eval()
    for layer in (model.score_fr, model.score_pool4, model.score_pool3):
        nn.init.normal_(layer.weight, std=0.01)
    return model


@pytest.mark.parametrize(
    "shape", [(1, 3, 1, 1), (1, 3, 97, 131), (1, 3, 361, 479), (2, 3, 360, 480)]
)
def test_any_input_size_gives_same_size_logits(fcn8s: FCN, shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        logits = fcn8s(torch.rand(*shape))
    assert logits.shape == (shape[0], 3, *shape[2:])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_tiny_and_odd_sizes_for_every_model(name: str) -> None:
    model = build_model(name, num_classes=2).eval()
    with torch.no_grad():
        for h, w in [(1, 1), (31, 33), (97, 131)]:
            assert model(torch.rand(1, 3, h, w)).shape == (1, 2, h, w)


def _symmetrise(model: nn.Module) -> None:
    """Make every kernel left-right symmetric, so a centred network commutes with a flip."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)


@pytest.mark.parametrize("name", VGG_MODELS)
def test_skips_are_exactly_centred(name: str) -> None:
    """With symmetric kernels, model(flip(x)) == flip(model(x)) only if no stage is off by a pixel."""
    torch.manual_seed(1)
    model = build_model(name, num_classes=3).double().eval()
    for layer in SCORES:
        if hasattr(model, layer):
            nn.init.normal_(score_conv(model, layer).weight, std=0.1)
    _symmetrise(model)
    image = torch.rand(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        out = model(image)
        out_flipped = model(image.flip(-1))
    torch.testing.assert_close(out_flipped, out.flip(-1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_odd_sizes_are_padded_not_resized(name: str) -> None:
    """An odd-sized image is scored exactly as its mean-colour padding to 64x64, cropped back."""
    torch.manual_seed(2)
    model = build_model(name, num_classes=3).double().eval()
    for layer in SCORES:
        if hasattr(model, layer):
            nn.init.normal_(score_conv(model, layer).weight, std=0.1)
    image = torch.rand(1, 3, 37, 45, dtype=torch.float64)
    padded = model.mean.expand(1, 3, 64, 64).clone()
    padded[..., :37, :45] = image
    with torch.no_grad():
        out = model(image)
        out_padded = model(padded)
    torch.testing.assert_close(out_padded[..., :37, :45], out, rtol=1e-9, atol=1e-9)


def test_score_layers_start_at_zero_and_upsamplers_as_specified(fcn8s: FCN) -> None:
    model = build_model("fcn8s_vgg16", num_classes=5)
    for layer in (model.score_fr, model.score_pool4, model.score_pool3):
        assert layer.weight.abs().sum() == 0 and layer.bias.abs().sum() == 0
    assert model.upscore2.weight.requires_grad and model.upscore_pool4.weight.requires_grad
    # The final upsampling is fixed: it has no parameters at all.
    assert list(model.upscore.parameters()) == []


def test_untrained_skips_add_nothing() -> None:
    """At initialisation FCN-8s is FCN-32s's coarse score upsampled: the zero skips are silent."""
    torch.manual_seed(3)
    model = build_model("fcn8s_vgg16", num_classes=3).eval()
    nn.init.normal_(model.score_fr.weight, std=0.1)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.encode(image)
        coarse = model.score_fr(model.neck(feats["pool5"]))
        expected = model.upscore(model.upscore_pool4(model.upscore2(coarse)), (64, 64))
        torch.testing.assert_close(model(image), expected)


def test_bilinear_transpose_conv_doubles_an_image() -> None:
    image = torch.rand(1, 3, 10, 14)
    up = bilinear_conv_transpose(3, 2)
    with torch.no_grad():
        out = up(image)
    assert out.shape == (1, 3, 20, 28)
    ref = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
    # Away from the border (where the transposed conv sees zero padding) they are identical.
    torch.testing.assert_close(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_matrix_upsampling_equals_bilinear_transpose_conv(factor: int) -> None:
    x = torch.rand(2, 4, 3, 5, dtype=torch.float64)
    conv = bilinear_conv_transpose(4, factor).double()
    with torch.no_grad():
        ref = conv(x)
    size = (3 * factor - 5, 5 * factor - 3)
    out = BilinearUpsample(factor)(x, size)
    torch.testing.assert_close(out, ref[..., : size[0], : size[1]])


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("fcn8s_vgg16", {"fc_channels": 16}), ("fcn8s_efficientnet_lite0", {})],
)
@pytest.mark.parametrize(("scale", "size"), [(1.25, (56, 88)), (0.5, (23, 35))])
def test_input_scale_runs_the_network_on_the_resized_image(
    name: str, kwargs: dict, scale: float, size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    plain = build_model(name, num_classes=3, **kwargs).eval()
    for layer in SCORES:
        if hasattr(plain, layer):
            nn.init.normal_(score_conv(plain, layer).weight, std=0.1)
    scaled = build_model(name, num_classes=3, input_scale=scale, **kwargs).eval()
    scaled.load_state_dict(plain.state_dict())
    assert scaled.arch == {"name": name, "num_classes": 3, "input_scale": scale, **kwargs}
    x = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        # 45 x 70 times 1.25 is 56.25 x 87.5 -> 56 x 88 (half up); times 0.5 -> 23 x 35.
        small = F.interpolate(x, size, mode="bilinear", antialias=scale < 1)
        expected = F.interpolate(plain(small), (45, 70), mode="bilinear")
        got = scaled(x)
        torch.testing.assert_close(got, expected)
        # The feature cache's path (encode once, decode every epoch) gives the same logits.
        torch.testing.assert_close(scaled.decode(scaled.encode(x), (45, 70)), got)
        assert scaled(torch.rand(1, 3, 1, 1)).shape == (1, 3, 1, 1)


def test_input_scale_is_checked_and_survives_a_checkpoint(tmp_path) -> None:
    from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from fcnseg.data.info import DATASET1

    for bad in (0, -1.0, 5.0, "2"):
        with pytest.raises(ValueError, match="input_scale must be a number in"):
            build_model("fcn8s_efficientnet_lite0", num_classes=3, input_scale=bad)
    model = build_model("fcn8s_efficientnet_lite0", num_classes=11, input_scale=1.5).eval()
    nn.init.normal_(score_conv(model, "score_fr").weight, std=0.1)
    save_checkpoint(tmp_path / "c.pt", model, DATASET1)
    again, _ = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    assert again.input_scale == 1.5
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model(x))


@pytest.mark.parametrize(
    ("out_len", "in_len"), [(360, 540), (540, 360), (7, 3), (3, 7), (1, 5), (5, 1), (9, 9)]
)
def test_resize_matrix_equals_interpolate(out_len: int, in_len: int) -> None:
    x = torch.rand(2, 3, in_len, 4, dtype=torch.float64)
    expected = F.interpolate(x, (out_len, 4), mode="bilinear", align_corners=False)
    got = torch.einsum("oi,ncij->ncoj", resize_matrix(out_len, in_len, x), x)
    torch.testing.assert_close(got, expected)


def test_upsample_then_resize_is_one_pair_of_products() -> None:
    """The input_scale path: upsampling to the resized input's size and resizing back to the
    image's size, fused, equals doing the two steps."""
    x = torch.rand(2, 4, 34, 46, dtype=torch.float64)
    up = BilinearUpsample(4)
    expected = F.interpolate(up(x, (135, 180)), (90, 120), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x, (135, 180), resize_to=(90, 120)), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_upsampling_in_low_precision_keeps_wide_images_columns(dtype: torch.dtype) -> None:
    """Under autocast the scores reach the upsampling in bf16/fp16: its matrices must still
    index every column of a 480-pixel-wide image (bf16 counts exactly only to 256)."""
    x = torch.rand(1, 2, 90, 120)
    up = BilinearUpsample(4)
    for kwargs in ({}, {"resize_to": (240, 320)}):
        expected = up(x, (360, 480), **kwargs)
        got = up(x.to(dtype), (360, 480), **kwargs)
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), expected, atol=0.02, rtol=0)
