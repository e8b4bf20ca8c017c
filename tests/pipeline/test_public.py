"""``genevolve_async.pipeline`` exports exactly its ``__all__``, and every name resolves."""

from __future__ import annotations

import genevolve_async.pipeline as pipeline


def test_all_is_complete_and_resolves() -> None:
    exported = pipeline.__all__
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(pipeline, name), name
    public = {
        name
        for name, value in vars(pipeline).items()
        if not name.startswith("_") and not isinstance(value, type(pipeline))
    }
    assert public - {"annotations"} <= set(exported)
