"""``python -m genevolve_async <command>``: batch rollouts, rendering and judging.

Run ``python -m genevolve_async --help`` for the commands.
"""

from __future__ import annotations

import sys

from .pipeline._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
