"""Shared pieces of the hostile-input tests: text strategies and a linear-cost check.

Each parser of foreign text gets property tests (hypothesis) that it never
raises anything but its own classified error, and a cost check that work on
an input ten times longer is about ten times the work: measured as CPU time
of the same call in the same test, the best of a few runs, with a factor of
30 allowed (a quadratic parser shows 100, the backtracking regexes these
tests were written against showed 1,000 and more).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import strategies as st

# Pieces of what models, judges and gateways write, plus the characters
# parsers treat specially: hypothesis joins them into replies.
TOKENS = (
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "\\",
    ",",
    ":",
    "=",
    " ",
    "\n",
    "\t",
    "*",
    "```",
    "```json",
    "json",
    "null",
    "true",
    "1",
    "7.5",
    "-",
    "1e309",
    "NaN",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    '"name"',
    '"arguments"',
    '"gen_prompt"',
    '"reference_images"',
    '"img_id"',
    "IMG_001",
    "faithfulness",
    "visual_correctness",
    "text_accuracy",
    "aesthetics",
    "text_accuracy_na",
    "rationale",
    "N/A",
    "\x00",
    "\ud800",
    "é",
    "\u0663",
)

replies = st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=60).map("".join)
"""Text built from the tokens above and a little noise."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
"""Any JSON value, for the parsers that take decoded JSON (Serper, results rows)."""

# Inputs that once cost super-linear time somewhere: n repetitions of a unit.
ADVERSARIAL_UNITS = {
    "fence-newlines": ("```", "\n", "x"),
    "open-braces": ("", "{", ""),
    "close-braces": ("", "}", ""),
    "pairs": ("", "{}", ""),
    "nested": ("", "{", "}"),
    "commas": ("{", ",", ""),
    "comma-spaces": ('{"a":1', ", ", "x}"),
    "quotes": ("", '"', ""),
    "single-quotes": ("{", "'", ""),
    "backslashes": ('{"', "\\", ""),
    "colon-spaces": ("faithfulness:", " ", "x"),
    "field-names": ("", "faithfulness ", ""),
    "rationale": ("", 'rationale: "\\', ""),
    "tool-calls": ("", "<tool_call>{", ""),
    "think": ("", "<think>", "</think>"),
}


def adversarial(kind: str, n: int) -> str:
    head, unit, tail = ADVERSARIAL_UNITS[kind]
    if kind == "nested":
        return unit * n + "x" + tail * n
    return head + unit * n + tail


def cpu_seconds(call: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best


def growth(parse: Callable[[str], object], make: Callable[[int], str], n: int) -> float:
    """CPU time on ``make(10 * n)`` over CPU time on ``make(n)`` (errors count as done)."""

    def run(text: str) -> Callable[[], object]:
        def call() -> object:
            try:
                return parse(text)
            except Exception as exc:  # the property tests check which exceptions
                return exc

        return call

    small, large = make(n), make(10 * n)
    floor = 0.0005  # below this, timer noise dominates
    return max(cpu_seconds(run(large)), floor) / max(cpu_seconds(run(small)), floor)


LINEAR = 30.0
"""Allowed growth for 10x the input: linear is about 10, quadratic 100."""
