"""``python -m examples.webapp``: serve the demo with uvicorn and the slow-client limits.

``uvicorn examples.webapp.app:app`` works too, but then uvicorn's own
defaults apply: no cap on connections or on the header block.
"""

from __future__ import annotations

import argparse

import uvicorn

from .app import SERVER_LIMITS, app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.webapp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=30,
        **SERVER_LIMITS.uvicorn_options(),
    )


if __name__ == "__main__":
    main()
