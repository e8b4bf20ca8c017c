"""genevolve-async: an async-first runtime for GenEvolve image-generation agents.

The public surface is what this module and its unprefixed subpackages
(``agent``, ``protocol``, ``tools``, ``policy``, ``judge``, ``sim``, ...)
export; underscored modules may change at any time.
"""

from __future__ import annotations

from ._endpoints import Endpoint as Endpoint
from ._endpoints import EndpointPool as EndpointPool
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BadResponseError as BadResponseError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ErrorKind as ErrorKind
from ._errors import GenEvolveError as GenEvolveError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import RolloutError as RolloutError
from ._errors import RuntimeClosedError as RuntimeClosedError
from ._errors import ServiceError as ServiceError
from ._errors import ServiceUnavailableError as ServiceUnavailableError
from ._gc import tune_gc_for_throughput as tune_gc_for_throughput
from ._limits import ProviderLimiter as ProviderLimiter
from ._limits import ProviderLimits as ProviderLimits
from ._retry import RetryPolicy as RetryPolicy
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeConfig as RuntimeConfig
from ._secrets import scrub_secrets as scrub_secrets
from ._types import Termination as Termination
from ._version import __version__ as __version__
from .agent import AgentConfig as AgentConfig
from .agent import AgentEvent as AgentEvent
from .agent import AgentResult as AgentResult
from .agent import Answered as Answered
from .agent import Finished as Finished
from .agent import GenEvolveAgent as GenEvolveAgent
from .agent import ModelReplied as ModelReplied
from .agent import RoundStarted as RoundStarted
from .agent import ToolCallFinished as ToolCallFinished
from .agent import ToolCallStarted as ToolCallStarted
from .policy import PolicyClient as PolicyClient
from .protocol import Program as Program
from .protocol import ReferenceImage as ReferenceImage
from .tools import Tool as Tool
from .tools import ToolContext as ToolContext

__all__ = [
    "AgentConfig",
    "AgentEvent",
    "AgentResult",
    "Answered",
    "AuthenticationError",
    "BadResponseError",
    "ConfigurationError",
    "Endpoint",
    "EndpointPool",
    "ErrorKind",
    "Finished",
    "GenEvolveAgent",
    "GenEvolveError",
    "ModelReplied",
    "PolicyClient",
    "Program",
    "ProviderLimiter",
    "ProviderLimits",
    "RateLimitedError",
    "ReferenceImage",
    "RetryPolicy",
    "RolloutError",
    "RoundStarted",
    "Runtime",
    "RuntimeClosedError",
    "RuntimeConfig",
    "ServiceError",
    "ServiceUnavailableError",
    "Termination",
    "Tool",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolContext",
    "__version__",
    "scrub_secrets",
    "tune_gc_for_throughput",
]
