"""The top-level namespace (slicewise/__init__.py): a static, complete ``__all__``."""

from __future__ import annotations


def test_top_level_all_is_static_and_complete():
    import slicewise

    assert set(slicewise.__all__) == set(slicewise._API) | {"audit", "SlicewiseError", "__version__"}
    for name in slicewise.__all__:
        assert getattr(slicewise, name) is not None
