"""The --dask address grammar and joining a scheduler that is not there (no cluster is started here)."""

from __future__ import annotations

import pytest

from slicewise.errors import InputError
from slicewise.utils import cluster


def test_parse_address_and_unreachable_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.parse_address("local:3") == 3
    assert cluster.parse_address("local") == cluster.cores()
    assert cluster.parse_address("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    for bad in ("local:0", "local:x", "nowhere"):
        with pytest.raises(InputError, match="local:"):
            cluster.parse_address(bad)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(InputError, match="cannot reach the dask scheduler"), cluster.connect("tcp://127.0.0.1:9"):
        pass
