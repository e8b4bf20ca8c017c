"""Build the chat messages of one judge request."""

from __future__ import annotations

from typing import Any

__all__ = ["IMAGE_ORDER_NOTE", "build_judge_messages"]

IMAGE_ORDER_NOTE = "Image 1 is the generated image, Image 2 the ground truth."
"""The sentence that tells the judge which attached image is which."""


def build_judge_messages(
    *,
    rubric: str,
    sample_id: str,
    request: str,
    generated_uri: str,
    ground_truth_uri: str,
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

    Returns:
        The `messages` list for a chat-completions call.
    """
    text = f"Sample id: {sample_id}\n\nRequest:\n{request}\n\n{IMAGE_ORDER_NOTE}"
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
