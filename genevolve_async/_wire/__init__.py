"""Our HTTP/1.1 client for the hot paths (policy, Serper, image downloads).

See :mod:`._client` for what it does and why it exists.
"""

from ._client import Resolve, WireClient, WireStream
from ._connection import Headers, WireResponse
from ._exceptions import BodyTooLargeError, ConnectionClosedError, RemoteProtocolError, WireError

__all__ = [
    "BodyTooLargeError",
    "ConnectionClosedError",
    "Headers",
    "RemoteProtocolError",
    "Resolve",
    "WireClient",
    "WireError",
    "WireResponse",
    "WireStream",
]
