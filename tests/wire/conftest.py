"""Fixtures for the wire client's tests: a client closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from genevolve_async._wire import WireClient


@pytest.fixture
async def client() -> AsyncIterator[WireClient]:
    async with WireClient() as wire:
        yield wire
