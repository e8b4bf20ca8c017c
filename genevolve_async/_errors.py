"""The exception tree, and the classified error a rollout records.

Exceptions are for what callers must handle; a malformed model reply or a
failed tool call is an observation for the policy, never an exception::

    GenEvolveError
    ├── ConfigurationError      bad settings, missing keys, bad input
    ├── AuthenticationError     a service refused our credentials (not retried)
    ├── RuntimeClosedError      a Runtime used outside its ``async with`` block
    └── ServiceError            a backend failed after the retry policy gave up
        ├── RateLimitedError    429s outlasted the retries
        ├── ServiceUnavailableError  connection errors, timeouts, 5xx
        └── BadResponseError    a 2xx answer we could not use, or a 4xx
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "ConfigurationError",
    "ErrorKind",
    "GenEvolveError",
    "RateLimitedError",
    "RolloutError",
    "RuntimeClosedError",
    "ServiceError",
    "ServiceUnavailableError",
    "classify_exception",
]


class GenEvolveError(Exception):
    """Root of every exception genevolve-async raises on purpose."""


class ConfigurationError(GenEvolveError, ValueError):
    """Settings or input that cannot work: fix the call, do not retry."""


class RuntimeClosedError(GenEvolveError, RuntimeError):
    """A :class:`Runtime` was used before ``async with`` or after it closed."""


class ServiceError(GenEvolveError):
    """A backend call failed for good (after the retry policy gave up).

    Attributes:
        service: the provider's name (``policy``, ``serper``, ...).
        status: the HTTP status, when there was one.
    """

    def __init__(self, message: str, *, service: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status


class AuthenticationError(ServiceError):
    """The service refused the credentials (401/403). Never retried."""


class RateLimitedError(ServiceError):
    """The service kept answering 429.

    Attributes:
        retry_after: the delay the service asked for, in seconds, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status)
        self.retry_after = retry_after


class ServiceUnavailableError(ServiceError):
    """Connection failures, timeouts and 5xx answers: worth retrying.

    Attributes:
        retry_after: the delay the service asked for, in seconds, if any.
        retryable: ``False`` when the request may have reached the service and
            the provider is not safe to repeat (a POST is never sent twice then).
    """

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, service=service, status=status)
        self.retry_after = retry_after
        self.retryable = retryable


class BadResponseError(ServiceError):
    """A 4xx other than 401/403/429, or a 2xx body we could not use."""


ErrorKind = Literal[
    "no_answer",
    "invalid_request",
    "configuration",
    "authentication",
    "rate_limited",
    "service_unavailable",
    "bad_response",
    "timeout",
    "cancelled",
    "internal",
]
"""Closed set of error kinds recorded on rollouts and batch rows."""


@dataclass(kw_only=True, slots=True, frozen=True)
class RolloutError:
    """A classified error: what went wrong, in a form that serialises."""

    kind: ErrorKind
    """One of :data:`ErrorKind`."""
    message: str
    """Human-readable detail; never carries a secret."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message}

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def classify_exception(exc: BaseException) -> RolloutError:
    """Map an exception to a :class:`RolloutError` (kind plus message)."""
    kind: ErrorKind
    if isinstance(exc, AuthenticationError):
        kind = "authentication"
    elif isinstance(exc, RateLimitedError):
        kind = "rate_limited"
    elif isinstance(exc, ServiceUnavailableError):
        kind = "service_unavailable"
    elif isinstance(exc, BadResponseError):
        kind = "bad_response"
    elif isinstance(exc, ConfigurationError):
        kind = "configuration"
    elif isinstance(exc, TimeoutError):
        kind = "timeout"
    else:
        kind = "internal"
    message = str(exc) or type(exc).__name__
    if kind == "internal":
        message = f"{type(exc).__name__}: {message}"
    return RolloutError(kind=kind, message=message[:2000])
