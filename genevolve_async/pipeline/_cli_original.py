"""The original project's flags and environment variables, on top of ours.

Every flag of the original's ``scripts/run_agent.py``, ``generate_images.py``
and ``evaluate_images.py`` is accepted with its meaning and default;
:func:`add_original_flags` declares those we do not already have under the
same name, and :func:`apply_original_flags` folds them into our options
after parsing. Kept apart from ``_cli.py`` so that the two sets of flags
stay easy to tell apart (the README's "Coming from the original" lists
both).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["add_original_flags", "apply_original_flags"]

logger = logging.getLogger("genevolve_async.cli")

_LOCAL_QWEN = "qwen-image-edit"
_NANO = "nano-banana-pro"
# Flags of the original's generate_images.py that only its local backend reads:
# flag dest -> our renderer keyword.
_LOCAL_KEYWORDS = {
    "qwen_model_id": "model",
    "device": "device",
    "num_inference_steps": "num_inference_steps",
    "true_cfg_scale": "true_cfg_scale",
}


def add_original_flags(
    p: argparse.ArgumentParser, command: str, env: Mapping[str, str] = os.environ
) -> None:
    """Declare the original's flags (and environment defaults) on a command's parser.

    Flags that only alias one of ours default to ``SUPPRESS``, so ours keeps
    its default unless the alias is given.
    """
    g = p.add_argument_group("the original's flags (same meaning and default)")
    if command in ("run", "pipeline"):
        _policy_flags(p, g, env)
    if command in ("render", "pipeline"):
        _render_flags(g)
    if command in ("evaluate", "pipeline"):
        _judge_env(p, env)
    if command == "evaluate":
        _evaluate_flags(g)


def _policy_flags(
    p: argparse.ArgumentParser, g: argparse._ArgumentGroup, env: Mapping[str, str]
) -> None:
    g.add_argument(
        "--max-tokens",
        dest="max_tokens_per_round",
        type=int,
        default=argparse.SUPPRESS,
        help="= --max-tokens-per-round",
    )
    g.add_argument(
        "--max-prompt-length",
        type=int,
        default=6144,
        help="prompt budget in tokens; a longer conversation ends the rollout (default: 6144)",
    )
    g.add_argument(
        "--max-response-length",
        type=int,
        default=30000,
        help="tokens the policy may write over a whole rollout (default: 30000)",
    )
    if env.get("GENEVOLVE_MODEL"):
        p.set_defaults(model=env["GENEVOLVE_MODEL"])


def _render_flags(g: argparse._ArgumentGroup) -> None:
    for flag, kind in (
        ("--qwen-model-id", str),
        ("--device", str),
        ("--num-inference-steps", int),
        ("--true-cfg-scale", float),
    ):
        g.add_argument(
            flag,
            type=kind,
            default=argparse.SUPPRESS,
            help=f"--backend {_LOCAL_QWEN} only, as in the original",
        )
    g.add_argument(
        "--nano-model", default=argparse.SUPPRESS, help=f"--backend {_NANO}: the model name"
    )
    g.add_argument(
        "--google-api-key",
        default=argparse.SUPPRESS,
        help=f"--backend {_NANO}: the key (default: GOOGLE_API_KEY, else GEMINI_API_KEY)",
    )


def _judge_env(p: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    # Strings: argparse converts them with the flag's type, so a bad value is
    # reported like a bad flag.
    defaults: dict[str, str] = {}
    for name, dest in (
        ("GENEVOLVE_EVAL_MODEL", "judge_model"),
        ("GENEVOLVE_EVAL_MAX_TRY", "max_tries"),
        ("GENEVOLVE_EVAL_TIMEOUT_SEC", "judge_timeout"),
    ):
        if env.get(name, "").strip():
            defaults[dest] = env[name].strip()
    p.set_defaults(**defaults)


def _evaluate_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "-o",
        "--output-json",
        type=Path,
        default=None,
        help="results_eval.json path (default: <output folder>/results_eval.json)",
    )
    g.add_argument(
        "--summary-json", type=Path, default=None, help="default: <output folder>/summary.json"
    )
    g.add_argument(
        "--summary-csv", type=Path, default=None, help="default: <output folder>/summary.csv"
    )
    g.add_argument(
        "--total-cases",
        type=int,
        default=0,
        help="denominator of the whole set's overall_missing_zero (default: the row count)",
    )
    g.add_argument(
        "--api-key", dest="judge_api_key", default=argparse.SUPPRESS, help="= --judge-api-key"
    )
    g.add_argument(
        "--api-base", dest="judge_base_url", default=argparse.SUPPRESS, help="= --judge-base-url"
    )


def apply_original_flags(args: argparse.Namespace) -> None:
    """Fold the original's flags into ours (after parsing).

    Sets ``original_render_options`` (renderer keywords, recorded with the
    other render options) and ``render_secrets`` (keywords never recorded)
    on commands that render.
    """
    if getattr(args, "rpm", None) == 0:
        args.rpm = None  # the original's 0: no limit
    if hasattr(args, "backend"):
        _apply_render_flags(args)


def _apply_render_flags(args: argparse.Namespace) -> None:
    given = {dest: getattr(args, dest) for dest in _LOCAL_KEYWORDS if hasattr(args, dest)}
    options: dict[str, object] = {}
    if given and args.backend != _LOCAL_QWEN:
        logger.warning(
            "%s apply to --backend %s only, as in the original; ignored for %s "
            "(use --render-option KEY=VALUE for this backend)",
            ", ".join("--" + dest.replace("_", "-") for dest in given),
            _LOCAL_QWEN,
            args.backend,
        )
    elif given:
        options.update({_LOCAL_KEYWORDS[dest]: value for dest, value in given.items()})
    if args.backend == _NANO and hasattr(args, "nano_model"):
        options["model"] = args.nano_model
    # Taken as given (no JSON reading), after any --render-option.
    args.original_render_options = options
    # The key travels beside the options: they are recorded in checkpoints.
    args.render_secrets = (
        {"api_key": args.google_api_key}
        if args.backend == _NANO and getattr(args, "google_api_key", None)
        else {}
    )
