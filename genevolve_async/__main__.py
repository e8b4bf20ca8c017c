"""``python -m genevolve_async <command>``: batch rollouts, rendering and judging.

Run ``python -m genevolve_async --help`` for the commands.
"""

from __future__ import annotations

import sys

from ._gc import tune_gc_for_throughput
from .pipeline._cli import main as _pipeline_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``genevolve-async`` command: a long batch process, so tune the GC for it."""
    tune_gc_for_throughput()
    return _pipeline_main(argv)


if __name__ == "__main__":
    sys.exit(main())
