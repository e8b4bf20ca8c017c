from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_pipeline() -> Iterator[Any]:
    """A random-weight Qwen-Image-Edit pipeline, built once per session (needs the local extra)."""
    pytest.importorskip("diffusers")
    from tests._tiny_qwen import tiny_pipeline_context

    with tiny_pipeline_context() as pipeline:
        yield pipeline
