"""The methods (lightly's losses, heads and momentum updates) around slicewise's backbone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slicewise.config import PretrainConfig, load_config
from slicewise.errors import ConfigError
from slicewise.models.tiny_sam import TINY_SAM
from slicewise.selfsup.methods import BYOL, MIM, MoCoV2, VICReg, build_backbone, build_method


def _method(name: str, *extra: str):
    cfg = load_config(
        PretrainConfig,
        None,
        [
            "model.encoder=test_efficientnet",
            "model.weights=random",
            f"method.name={name}",
            "method.memory_bank=0",
            "method.output_dim=32",
            *extra,
        ],
    )
    torch.manual_seed(0)
    return build_method(build_backbone(cfg.model), cfg.method), cfg


@pytest.mark.parametrize("name, cls", [("mocov2", MoCoV2), ("vicreg", VICReg), ("byol", BYOL)])
def test_the_loss_falls_on_a_fixed_pair(name, cls):
    method, _ = _method(name)
    assert isinstance(method, cls)
    g = torch.Generator().manual_seed(1)
    x1 = torch.rand((8, 3, 32, 32), generator=g)
    x2 = (x1 + 0.05 * torch.rand((8, 3, 32, 32), generator=g)).clamp(0, 1)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(12):
        loss, emb = method.loss(x1, x2, step, 12)
        assert emb.shape == (8, method.backbone.dim)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1e-3


def test_momentum_copies_follow_the_online_network_and_get_no_gradient():
    method, _ = _method("mocov2", "method.momentum=0.5")
    online, ema = method.backbone, method.backbone_momentum
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    method.loss(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32), 0, 1)
    # EMA with m = 0.5: halfway towards the online weights
    for p0, p, q in zip(before, ema.parameters(), online.parameters()):
        assert torch.allclose(p, 0.5 * p0 + 0.5 * q)


def test_mirror_backbone_is_invariant_to_slice_reversal():
    method, _ = _method("vicreg", "model.channel_init=mirror", "model.in_slices=5")
    x = torch.rand(2, 5, 32, 32)
    bb = method.backbone.eval()
    assert torch.allclose(bb(x), bb(x.flip(1)), atol=1e-5)  # up to summation order


def _smooth(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    """Smooth images in [0, 1] (bilinear 4×4 noise): masked patches are predictable from their neighbours."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand((n, c, 4, 4), generator=g), size=(size, size), mode="bilinear", align_corners=True)


@pytest.mark.parametrize(
    "encoder, size, patch", [("test_efficientnet", 64, 32), (TINY_SAM, 32, 16)], ids=["cnn", "samvit"]
)
def test_mim_loss_falls(encoder, size, patch):
    method, _ = _method("mim", f"model.encoder={encoder}", f"model.img_size={size}")
    assert isinstance(method, MIM) and method.patch == patch
    x = _smooth(8, 3, size, 1)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(20):
        torch.manual_seed(step)  # the masks of a step, as PretrainModule seeds them
        loss, emb = method.loss(x, x, step, 20)
        assert emb.shape == (8, method.backbone.dim)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses


def test_mim_counts_masked_pixels_only_and_never_sees_them():
    method, _ = _method("mim", "model.channel_init=repeat")
    assert method.mask_value.shape == (3,)  # one per input channel
    x = _smooth(4, 3, 64, 2)
    z = method.backbone.normalize(x)
    torch.manual_seed(0)
    mask = method.random_mask(4, 64, 64, z.device)
    assert mask.shape == (4, 1, 64, 64) and torch.all(mask.sum((1, 2, 3)) == 3 * 32 * 32)  # 3 of 4 patches (0.6)
    with torch.no_grad():
        pred, emb = method.reconstruct(z, mask)
        loss = method.masked_l1(pred, z, mask)
        # the target changed on unmasked pixels only: the same loss
        assert torch.equal(method.masked_l1(pred, z + 5 * (1 - mask), mask), loss)
        assert not torch.equal(method.masked_l1(pred, z + 5 * mask, mask), loss)
        # the input changed on masked pixels only: the encoder sees the same thing
        pred2, emb2 = method.reconstruct(z + 5 * mask * torch.rand_like(z), mask)
        assert torch.equal(pred2, pred) and torch.equal(emb2, emb)
        torch.manual_seed(0)
        assert torch.allclose(method.loss(x, x, 0, 1)[0], loss)  # loss() is the same computation


def test_mim_mirror_stays_exactly_symmetric():
    method, _ = _method("mim", "model.channel_init=mirror", "model.in_slices=5")
    assert method.mask_value.shape == (1,)  # one value for every slice
    layer = method.backbone.first_layer
    start = layer.weight.detach().clone()
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    for step in range(3):
        torch.manual_seed(step)
        x = _smooth(4, 5, 64, step)
        loss, _ = method.loss(x, x, step, 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = layer.weight.detach()
    assert not torch.allclose(w, start) and torch.equal(w, w.flip(1))
    assert float(method.mask_value.detach().abs().max()) > 0  # the mask value trained, and is shared
    x = torch.rand(2, 5, 64, 64)
    method.eval()
    with torch.no_grad():
        z = method.backbone.normalize(x)
        torch.manual_seed(0)
        mask = method.random_mask(2, 64, 64, z.device)
        assert torch.allclose(method.reconstruct(z, mask)[1], method.reconstruct(z.flip(1), mask)[1], atol=1e-5)
        assert torch.allclose(method.backbone(x), method.backbone(x.flip(1)), atol=1e-5)


def test_mim_extras_stay_out_of_the_encoder():
    method, _ = _method("mim")
    extra = {k.split(".")[0] for k in method.state_dict() if not k.startswith("backbone.")}
    assert extra == {"mask_value", "decoder"}
    assert not any("mask" in k or "decoder" in k for k in method.backbone.encoder.state_dict())


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan"])
def test_bad_mask_ratio_is_a_one_line_config_error(value):
    with pytest.raises(ConfigError, match=r"method\.mask_ratio.*\(0, 1\)") as err:
        load_config(PretrainConfig, None, ["method.name=mim", f"method.mask_ratio={value}"])
    assert "\n" not in str(err.value)
