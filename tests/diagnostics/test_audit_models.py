"""The models an audit compares (``slicewise/diagnostics/audit_models.py``): names, the pretrained twin of a
saved model, and the report's notes."""

from __future__ import annotations

import torch

from slicewise.diagnostics.audit_models import attribution_models, pretrained_twin, shift_models, spec_note
from slicewise.models import build_model, save_model

BUILD = dict(weights="random", in_slices=3, channel_init="uniform")
SPEC = "test_resnet:skips=0111"


def _saved(tmp_path):
    torch.manual_seed(1)
    model = build_model(encoder="test_resnet", decoder_channels=(16, 16, 8, 8, 8), **BUILD)
    with torch.no_grad():
        model.decoder.head.weight.add_(1.0)  # "fine-tuned": differs from any fresh build
    folder = tmp_path / "runs" / "uniform"
    folder.mkdir(parents=True)
    return model, save_model(model, folder / "best.pt")


def test_a_saved_model_with_pretrained_gets_its_twin_first(tmp_path) -> None:
    model, path = _saved(tmp_path)
    audited = attribution_models(str(path), seed=3, pretrained=True, **BUILD)
    assert audited.name == "uniform" and list(audited.models) == ["pretrained", "fine-tuned"]
    twin = audited.models["pretrained"]
    torch.manual_seed(3)
    fresh = build_model(model.config)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in twin.state_dict().items())
    assert all(torch.equal(v, pretrained_twin(model, 3).state_dict()[k]) for k, v in twin.state_dict().items())
    assert "started from" in audited.notes["pretrained"] and "(seed 3)" in audited.notes["pretrained"]
    assert audited.pretrained_of is audited.models["fine-tuned"]


def test_a_saved_model_alone_has_no_note_and_no_first_layer_audit(tmp_path) -> None:
    _, path = _saved(tmp_path)
    audited = attribution_models(str(path), seed=0, pretrained=False, name="mine", **BUILD)
    assert list(audited.models) == ["mine"] and audited.notes == {} and audited.weights_audit() is None
    assert spec_note(str(path), 0) is None


def test_encoder_specs_are_noted_and_repeated_names_numbered(tmp_path) -> None:
    audited = shift_models([SPEC, SPEC], seed=0, **BUILD)
    assert list(audited.models) == [SPEC, f"{SPEC} (2)"]
    assert all("decoder randomly initialized (seed 0)" in note for note in audited.notes.values())
    named = attribution_models(SPEC, seed=0, pretrained=False, **BUILD)
    assert named.pretrained_of is named.models[SPEC] and named.notes[SPEC] == spec_note(SPEC, 0)
