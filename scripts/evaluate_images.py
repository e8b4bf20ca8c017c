#!/usr/bin/env python
"""Judge rendered images against ground truth: results_eval.json, summary.json, summary.csv.

Kept under the original project's name and flags (``--results``, ``--gt-root``,
``--model``, ``--max-workers``, ``--rpm``, ``--resume``); it is
``python -m genevolve_async evaluate`` (see ``--help`` for every option). The
judge endpoint comes from ``--judge-base-url`` / ``--judge-api-key``, else
``GENEVOLVE_JUDGE_BASE_URL`` / ``GENEVOLVE_JUDGE_API_KEY``, else the original's
``OPENAI_API_BASE`` / ``OPENAI_API_KEY``:

    python scripts/evaluate_images.py --results runs/bench_qwen/results.json \\
        --gt-root ./GenEvolve-Data-Bench/GenEvolve-Bench --model gemini-3.1-pro-preview \\
        --max-workers 16 --rpm 60 --resume
"""

from __future__ import annotations

import sys

from genevolve_async.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
