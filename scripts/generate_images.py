#!/usr/bin/env python
"""Render a rollout results.json: ``--input`` -> ``--output-dir``/images and results.json.

Kept under the original project's name and flags; it is
``python -m genevolve_async render`` (see ``--help`` for every option):

    python scripts/generate_images.py --input runs/example/results.json \\
        --output-dir runs/example_qwen --backend qwen-image-edit-service \\
        --service-url http://qwen-1:8001 --service-url http://qwen-2:8001 --parallel 8
"""

from __future__ import annotations

import sys

from genevolve_async.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["render", *sys.argv[1:]]))
