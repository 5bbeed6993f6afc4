"""Input identity: a resumed job refuses an input whose contents changed."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data.io import open_volume, write_volume
from slicewise.errors import InputError
from slicewise.utils.identity import check_identity, input_identity


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".h5"])
def test_changed_contents_are_detected(tmp_path, suffix):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (6, 80, 90), dtype=np.uint8)
    path = tmp_path / f"raw{suffix}"
    write_volume(path, a)
    with open_volume(path) as v:
        before = input_identity(v, path)
    with open_volume(path) as v:
        check_identity(before, input_identity(v, path))  # unchanged: accepted
    b = a.copy()
    b[3, 40, 45] ^= 1  # one voxel in a sampled region
    write_volume(path, b, overwrite=True)
    with open_volume(path) as v:
        after = input_identity(v, path)
    with pytest.raises(InputError, match="changed since the interrupted run"):
        check_identity(before, after)


def test_in_memory_arrays_are_hashed():
    a = np.zeros((3, 10, 10), np.float32)
    b = a.copy()
    b[-1, -1, -1] = 1
    assert input_identity(a)["sample_sha256"] != input_identity(b)["sample_sha256"]
    assert input_identity(a) == input_identity(a.copy())
