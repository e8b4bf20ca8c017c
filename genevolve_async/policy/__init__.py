"""The policy client: chat completions over one or many vLLM replicas."""

from __future__ import annotations

from ._client import PolicyAffinity as PolicyAffinity
from ._client import PolicyClient as PolicyClient
from ._client import PolicyRoute as PolicyRoute
from ._reply import ChatReply as ChatReply
from ._reply import TokenUsage as TokenUsage

__all__ = ["ChatReply", "PolicyAffinity", "PolicyClient", "PolicyRoute", "TokenUsage"]
