"""ViT encoders: SAM ViT-B intermediate blocks, deconvolution ladder, accepted input sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slicewise.models import build_model
from slicewise.models.encoders import encoder_kind
from slicewise.models.sam import ViTEncoder, intermediate_indices

SMALL = dict(decoder_channels=(32, 16, 16, 8, 8))


def test_intermediate_indices():
    assert intermediate_indices(12) == [2, 5, 8, 11]  # blocks 3, 6, 9, 12
    assert intermediate_indices(4) == [0, 1, 2, 3]
    assert intermediate_indices(24) == [5, 11, 17, 23]


def test_kind_comes_from_metadata():
    assert encoder_kind("samvit_base_patch16") == "vit"
    assert encoder_kind("vit_tiny_patch16_224") == "vit"
    assert encoder_kind("convnext_atto") == "cnn"


def test_sam_vit_b_features_and_ladder():
    """The real SAM ViT-B architecture (random weights, 64-pixel build): taps blocks 3, 6, 9, 12."""
    torch.manual_seed(0)
    enc = ViTEncoder("samvit_base_patch16", None, img_size=64).eval()
    assert enc.indices == [2, 5, 8, 11]
    assert enc.reductions == (2, 4, 8, 16) and enc.channels == (64, 128, 256, 768)
    assert enc.first_conv == "vit.patch_embed.proj"
    taps = {}
    for i in enc.indices:
        enc.vit.blocks[i].register_forward_hook(lambda m, a, out, i=i: taps.__setitem__(i, out))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = enc(x)
    assert [tuple(f.shape) for f in feats] == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 768, 4, 4)]
    torch.testing.assert_close(feats[3], taps[11].permute(0, 3, 1, 2))  # deepest = block 12, NHWC → NCHW
    with torch.no_grad():
        torch.testing.assert_close(feats[2], enc.ladders[2](taps[8].permute(0, 3, 1, 2)))


@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (96, 32)])
def test_sam_takes_any_multiple_of_16(hw):
    model = build_model(
        encoder="slicewise_samvit_tiny_patch16", weights="random", img_size=64, in_slices=5, **SMALL
    ).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 5, *hw)).shape == (1, 2, *hw)


def test_generic_timm_vit_takes_the_same_path():
    model = build_model(
        encoder="vit_tiny_patch16_224", weights="random", in_slices=3, channel_init="mirror", **SMALL
    ).eval()
    assert model.encoder.kind == "vit" and model.size_divisor == 16
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert model(x).shape == (1, 2, 32, 48)
        torch.testing.assert_close(model(x), model(x.flip(1)), rtol=0, atol=1e-5)


def test_sam_build_size_changes_only_position_embeddings():
    a = ViTEncoder("slicewise_samvit_tiny_patch16", None, img_size=64)
    b = ViTEncoder("slicewise_samvit_tiny_patch16", None, img_size=128)
    assert a.vit.pos_embed.shape == (1, 4, 4, 96) and b.vit.pos_embed.shape == (1, 8, 8, 96)
    assert sum(p.numel() for p in a.ladders.parameters()) == sum(p.numel() for p in b.ladders.parameters())


def test_cached_rel_pos_attention_equals_timm_and_resamples_nothing_at_the_build_size(monkeypatch):
    """The sped-up SAM attention (fused SDPA, cached relative-position index) gives timm's output exactly;
    at the build size no position embedding or relative table is interpolated per forward."""
    import timm
    import timm.models.vision_transformer_sam as tsam

    import slicewise.models.sam as sam

    torch.manual_seed(0)
    enc = ViTEncoder("slicewise_samvit_tiny_patch16", None, img_size=64, in_chans=3).eval()
    assert all(type(b.attn) is sam.CachedRelPosAttention and b.attn.fused_attn for b in enc.vit.blocks)
    ref = timm.create_model(
        "slicewise_samvit_tiny_patch16", pretrained=False, img_size=64, in_chans=3, num_classes=0
    ).eval()
    ref.load_state_dict(enc.vit.state_dict())
    assert set(ref.state_dict()) == set(enc.vit.state_dict())  # the cache is no buffer
    x = torch.rand(2, 3, 64, 64)
    calls = []
    interpolate = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(1) or interpolate(*a, **k))
    monkeypatch.setattr(sam, "get_rel_pos", lambda *a: calls.append("per-forward index") or tsam.get_rel_pos(*a))
    with torch.no_grad():
        ours = enc.vit.forward_intermediates(x, indices=enc.indices, intermediates_only=True)
        assert not calls  # build size: nothing resampled, the index table comes from the cache
        monkeypatch.undo()
        theirs = ref.forward_intermediates(x, indices=enc.indices, intermediates_only=True)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b)
        other = torch.rand(1, 3, 96, 96)  # another size: timm's interpolating path, same result
        for a, b in zip(
            enc.vit.forward_intermediates(other, indices=enc.indices, intermediates_only=True),
            ref.forward_intermediates(other, indices=enc.indices, intermediates_only=True),
        ):
            assert torch.equal(a, b)


def test_compiled_sam_encoder_equals_eager():
    """``torch.compile`` of the SAM encoder. Backend aot_eager keeps the test fast; inductor (which builds its
    CPU kernels on this machine, about 40 s for this encoder on one core) gave a largest difference of 8e-7."""
    torch.manual_seed(0)
    enc = ViTEncoder("slicewise_samvit_tiny_patch16", None, img_size=64, in_chans=3).eval()
    x = torch.rand(2, 3, 64, 64)
    compiled = torch.compile(enc, backend="aot_eager", dynamic=False)
    with torch.no_grad():
        for a, b in zip(enc(x), compiled(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_importing_slicewise_models_registers_nothing_in_timm() -> None:
    """The tiny SAM ViT is registered only on demand (tests' conftest, or when its name is used)."""
    import subprocess
    import sys

    code = (
        "import timm, slicewise.models, slicewise.models.tiny_sam as s; assert not timm.is_model(s.TINY_SAM); "
        "from slicewise.models.spec import check_encoder_name; check_encoder_name(s.TINY_SAM); "
        "assert timm.is_model(s.TINY_SAM)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
