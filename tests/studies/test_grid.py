"""A study cell's result.json is read back as untrusted metadata: validated, one line naming the field."""

from __future__ import annotations

import json

import pytest

from slicewise.errors import InputError
from slicewise.studies.grid import RESULT, Cell, cell_dir, read_result


@pytest.fixture
def cell(tmp_path):
    c = Cell(index=0, id="seed-0", params={"seed": 0})
    cell_dir(tmp_path, c).mkdir(parents=True)
    return c


def _write(tmp_path, cell, text):
    (cell_dir(tmp_path, cell) / RESULT).write_text(text)


def test_a_valid_result_reads_back_with_its_label_columns(tmp_path, cell):
    _write(
        tmp_path, cell, json.dumps({"fingerprint": "f", "metrics": [{"metric": "dice", "value": 0.5, "split": "test"}]})
    )
    res = read_result(tmp_path, cell)
    assert res["metrics"] == [{"metric": "dice", "value": 0.5, "split": "test"}] and res["fingerprint"] == "f"
    assert read_result(tmp_path, Cell(index=1, id="seed-1", params={"seed": 1})) is None


@pytest.mark.parametrize(
    "text, match",
    [
        (json.dumps({"metrics": [{"metric": "dice", "value": "high"}]}), "field 'metrics.0.value'"),
        (json.dumps({"metrics": {"dice": 1}}), "field 'metrics'"),
        (json.dumps({"metrics": [{"value": 1}]}), "field 'metrics.0.metric' is missing"),
        (json.dumps([1, 2]), "not a mapping"),
        ('{"metrics": [', "damaged"),
    ],
)
def test_a_damaged_or_forged_result_is_one_line(tmp_path, cell, text, match):
    _write(tmp_path, cell, text)
    with pytest.raises(InputError, match=match) as err:
        read_result(tmp_path, cell)
    assert "result.json" in str(err.value) and "delete" in str(err.value) and "\n" not in str(err.value)
