"""environment_info / environment_text: the record every results file and report carries."""

from __future__ import annotations

import json

import torch

from slicewise.utils.environment import environment_info, environment_text


def test_record_is_json_and_names_what_changes_numbers() -> None:
    info = environment_info(seed=3)
    assert json.loads(json.dumps(info)) == info
    assert torch.__version__.startswith(info["versions"]["torch"]) and info["seed"] == 3
    assert info["threads"]["torch"] == torch.get_num_threads() and info["device"]["type"] == "cpu"
    assert info["torch_build"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    text = environment_text(info)
    n = torch.get_num_threads()
    assert (
        f"{n} torch thread{'' if n == 1 else 's'} on cpu" in text
        and f"({info['torch_build']['cpu_capability']})" in text
    )
    assert "seed 3" in text and "\n" not in text
