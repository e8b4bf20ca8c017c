"""Entry point: ``python -m genevolve_async.bench``."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    main()
