"""The agent: ``GenEvolveAgent.arun`` / ``run`` / ``stream``, its config, events and result."""

from __future__ import annotations

from ._agent import GenEvolveAgent as GenEvolveAgent
from ._agent import default_tools as default_tools
from ._config import AgentConfig as AgentConfig
from ._config import ToolMode as ToolMode
from ._events import AgentEvent as AgentEvent
from ._events import AgentHook as AgentHook
from ._events import Answered as Answered
from ._events import Finished as Finished
from ._events import ModelReplied as ModelReplied
from ._events import RoundStarted as RoundStarted
from ._events import ToolCallFinished as ToolCallFinished
from ._events import ToolCallStarted as ToolCallStarted
from ._result import AgentResult as AgentResult
from ._result import Timings as Timings
from ._result import Usage as Usage

__all__ = [
    "AgentConfig",
    "AgentEvent",
    "AgentHook",
    "AgentResult",
    "Answered",
    "Finished",
    "GenEvolveAgent",
    "ModelReplied",
    "RoundStarted",
    "Timings",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolMode",
    "Usage",
    "default_tools",
]
