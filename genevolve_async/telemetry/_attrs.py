"""Attribute and instrument names: OpenTelemetry's GenAI conventions first, ours after.

The GenAI conventions are still at "Development" status; the names here
follow the registry as of 2026 (``gen_ai.provider.name`` replaced
``gen_ai.system``). Ours carry the ``genevolve.`` prefix.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["server_attributes"]

# GenAI semantic conventions.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_SEED = "gen_ai.request.seed"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"

# General conventions.
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_STATUS = "http.response.status_code"

# Ours.
ROUND = "genevolve.round"
FINAL_ROUND = "genevolve.round.final"
ROUNDS = "genevolve.rounds"
TERMINATION = "genevolve.termination"
CALLS = "genevolve.tool_calls"
CALL_PROVIDER = "genevolve.provider"
CALL_OPERATION = "genevolve.provider.operation"
ATTEMPTS = "genevolve.provider.attempts"
LIMITER_WAIT = "genevolve.limiter.wait_s"
OUTCOME = "genevolve.outcome"

# Span events.
RETRY_EVENT = "genevolve.retry"

AGENT = "genevolve"
"""``gen_ai.agent.name`` of our rollouts."""
POLICY_PROVIDER = "vllm"
"""``gen_ai.provider.name`` of the policy: an OpenAI-compatible vLLM server."""


def server_attributes(url: str) -> dict[str, str | int]:
    """``server.address`` and ``server.port`` of a URL; never its path, query or credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {}
    attrs: dict[str, str | int] = {SERVER_ADDRESS: parts.hostname or ""}
    if port is not None:
        attrs[SERVER_PORT] = port
    return attrs
