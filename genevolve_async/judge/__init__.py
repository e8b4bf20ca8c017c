"""The judge: its async client, and the pure parts (rubric, images, messages, parsing, scoring).

`JudgeClient` is the only part that touches the network. It builds on these:
`encode_judge_image` (in a worker thread) for both images,
`build_judge_messages` for the request, `parse_judge_reply` and
`normalize_scores` for each answer, and `aggregate` with the `summary_*`
helpers for the output files.
"""

from __future__ import annotations

from ._client import DEFAULT_JUDGE_MODEL, JUDGE_SERVICE, JudgeClient, JudgeVerdict
from ._images import MAX_JUDGE_IMAGE_SIDE, JudgeImageError, encode_judge_image
from ._messages import (
    DEFAULT_JUDGE_USER_TEMPLATE,
    IMAGE_ORDER_NOTE,
    build_judge_messages,
    fill_judge_user_template,
)
from ._parse import SCORE_FIELDS, JudgeParseError, JudgeScores, parse_judge_reply
from ._rubric import DEFAULT_RUBRIC, load_judge_text, load_rubric
from ._scoring import (
    DEFAULT_SPLIT_FIELDS,
    OVERALL_SPLIT,
    SCORE_WEIGHTS,
    SUMMARY_SCORE_FIELDS,
    WHOLE_SPLIT,
    SampleScores,
    SplitSummary,
    aggregate,
    judged_scores,
    mean_scores,
    normalize_scores,
    overall_score,
    split_value,
)
from ._summary import (
    SUMMARY_CSV_COLUMNS,
    format_summary_table,
    summary_csv_text,
    summary_dict,
    summary_rows,
    write_summary_csv,
)

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_JUDGE_USER_TEMPLATE",
    "DEFAULT_RUBRIC",
    "DEFAULT_SPLIT_FIELDS",
    "IMAGE_ORDER_NOTE",
    "JUDGE_SERVICE",
    "MAX_JUDGE_IMAGE_SIDE",
    "OVERALL_SPLIT",
    "SCORE_FIELDS",
    "SCORE_WEIGHTS",
    "SUMMARY_CSV_COLUMNS",
    "SUMMARY_SCORE_FIELDS",
    "WHOLE_SPLIT",
    "JudgeClient",
    "JudgeImageError",
    "JudgeParseError",
    "JudgeScores",
    "JudgeVerdict",
    "SampleScores",
    "SplitSummary",
    "aggregate",
    "build_judge_messages",
    "encode_judge_image",
    "fill_judge_user_template",
    "format_summary_table",
    "judged_scores",
    "load_judge_text",
    "load_rubric",
    "mean_scores",
    "normalize_scores",
    "overall_score",
    "parse_judge_reply",
    "split_value",
    "summary_csv_text",
    "summary_dict",
    "summary_rows",
    "write_summary_csv",
]

# Show public classes and functions as living here (in reprs, docs and
# tracebacks), not in the private modules that define them.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = __name__
del _name, _obj
