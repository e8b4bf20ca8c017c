"""Build the chat messages of one judge request."""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "DEFAULT_JUDGE_USER_TEMPLATE",
    "IMAGE_ORDER_NOTE",
    "build_judge_messages",
    "fill_judge_user_template",
]

IMAGE_ORDER_NOTE = "Image 1 is the generated image, Image 2 the ground truth."
"""The sentence that tells the judge which attached image is which."""

DEFAULT_JUDGE_USER_TEMPLATE = "Sample id: {sample_id}\n\nRequest:\n{request}\n\n" + IMAGE_ORDER_NOTE
"""The text part of the user message; ``{sample_id}`` and ``{request}`` are filled."""

# One pass over the template: a request that itself contains "{sample_id}"
# stays as written. Other braces (JSON examples, say) are left alone.
_FIELD = re.compile(r"\{(sample_id|request|prompt)\}")


def fill_judge_user_template(template: str, *, sample_id: str, request: str) -> str:
    """Fill ``{sample_id}`` and ``{request}`` (alias ``{prompt}``) in a user template.

    Everything else is kept byte for byte, so the original's text loaded
    from a file gives the original's request.
    """
    values = {"sample_id": sample_id, "request": request, "prompt": request}
    return _FIELD.sub(lambda match: values[match.group(1)], template)


def build_judge_messages(
    *,
    rubric: str,
    sample_id: str,
    request: str,
    generated_uri: str,
    ground_truth_uri: str,
    user_template: str = DEFAULT_JUDGE_USER_TEMPLATE,
) -> list[dict[str, Any]]:
    """Return the OpenAI chat messages that ask the judge to score one sample.

    The result is the rubric as the system message, then one user message
    holding a text part (sample id, request, which image is which), the
    generated image and the ground-truth image, in that order. The rubric
    refers to the images by position, so the order must not change.

    Args:
        rubric: The system message, usually `DEFAULT_RUBRIC`.
        sample_id: The row's id, shown to the judge to anchor its reply.
        request: The user's original image-generation request.
        generated_uri: The generated image as a data URI (or URL): Image 1.
        ground_truth_uri: The ground-truth image as a data URI (or URL): Image 2.
        user_template: The text part, with ``{sample_id}`` and ``{request}``
            (default: ours; the original's is loadable from a file).

    Returns:
        The `messages` list for a chat-completions call.
    """
    text = fill_judge_user_template(user_template, sample_id=sample_id, request=request)
    return [
        {"role": "system", "content": rubric},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": generated_uri}},
                {"type": "image_url", "image_url": {"url": ground_truth_uri}},
            ],
        },
    ]
