"""Each public namespace exports exactly its ``__all__``, and every name resolves."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = [
    "genevolve_async",
    "genevolve_async.agent",
    "genevolve_async.bench",
    "genevolve_async.cluster",
    "genevolve_async.compat",
    "genevolve_async.generator",
    "genevolve_async.judge",
    "genevolve_async.policy",
    "genevolve_async.pipeline",
    "genevolve_async.protocol",
    "genevolve_async.renderers",
    "genevolve_async.report",
    "genevolve_async.sim",
    "genevolve_async.telemetry",
    "genevolve_async.tools",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_complete_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)  # ordering is ruff's RUF022
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"
    public = {
        a
        for a in vars(module)
        if not a.startswith("_") and not isinstance(getattr(module, a), type(module))
    }
    public -= {"annotations"}
    assert public <= set(exported), (
        f"{name} exposes names not in __all__: {sorted(public - set(exported))}"
    )
