#!/usr/bin/env python
"""Batch agent rollouts: ``--input`` rows -> ``--output-dir``/results.json.

Kept under the original project's name and flags; it is
``python -m genevolve_async run`` (see ``--help`` for every option):

    python scripts/run_agent.py --input examples/example_prompts.jsonl \\
        --output-dir runs/example --base-url http://localhost:8000/v1 --model GenEvolve --parallel 64
"""

from __future__ import annotations

import sys

from genevolve_async.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
