"""The wire client's errors: all are ``OSError``, as a failed socket is.

    OSError
    └── WireError                 the exchange failed; nothing usable came back
        ├── ConnectionClosedError   the peer closed before the answer was complete
        ├── RemoteProtocolError     the peer spoke something that is not HTTP/1.1
        └── BodyTooLargeError       the answer's body passed the caller's limit

Timeouts raise the built-in ``TimeoutError`` (an ``OSError`` too), so callers
that already classify socket errors need no new branch.
"""

from __future__ import annotations

__all__ = ["BodyTooLargeError", "ConnectionClosedError", "RemoteProtocolError", "WireError"]


class WireError(OSError):
    """An HTTP exchange on the wire client failed."""


class ConnectionClosedError(WireError):
    """The connection closed before the answer was complete."""


class RemoteProtocolError(WireError):
    """The peer's bytes are not a valid HTTP/1.1 answer."""


class BodyTooLargeError(WireError):
    """The answer's body is larger than the caller allows."""
