"""The judge's system message: the built-in rubric and a loader for custom ones."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_RUBRIC", "load_judge_text", "load_rubric"]

DEFAULT_RUBRIC = """\
You are a strict, impartial evaluator of text-to-image generation.

You receive a generation request and two images:
- Image 1 is the GENERATED image, the one you are scoring.
- Image 2 is the GROUND-TRUTH image. It shows what the requested subject
  really looks like and serves as the reference for identity and appearance.
Score Image 1 only. Never score Image 2, and never reward Image 1 for
qualities that only Image 2 has.

Score four criteria. Each score must be exactly 0, 0.5 or 1; no other value is
allowed.

1. faithfulness: does Image 1 carry out the request? Check every requested
   subject, count, attribute, action, spatial relation, setting and style.
   1 = everything requested is present and correct; 0.5 = the main intent is
   met but at least one requested element is missing or wrong; 0 = the image
   does not answer the request or gets its main subject wrong.

2. visual_correctness: compared with Image 2, is the subject the RIGHT one,
   drawn with its real, stable visual features? Judge identity (the specific
   person, character, landmark, product, species, artwork or object) and the
   features that do not change between photos of it: shape, structure,
   proportions, characteristic colours and markings, logos, distinctive parts.
   Ignore what may legitimately differ: viewpoint, pose, framing, lighting,
   background and art style, unless the request fixes them.
   1 = clearly the same subject with its key features right; 0.5 = recognisably
   the intended subject but with clear errors in key features; 0 = a different
   or generic subject, or the key features are invented. A plausible-looking but
   wrong subject scores 0. Do not give credit for general resemblance alone.

3. text_accuracy: judge only text that must appear in the image because the
   request asks for it or the subject carries it (signs, labels, titles,
   packaging, logos with lettering). Count only text that is readable AND
   spelled exactly right. 1 = all required text is legible and correct;
   0.5 = part of it is legible and correct, or it has small errors;
   0 = the required text is missing, garbled, illegible or wrong. Invented or
   pseudo-text never earns credit.
   When the request needs no readable text at all, set text_accuracy_na to true
   and text_accuracy to 0.5; otherwise set text_accuracy_na to false.

4. aesthetics: the technical and artistic quality of Image 1 on its own:
   composition, lighting, colour, detail, coherence, and freedom from
   artefacts such as warped anatomy, melted objects or visible seams.
   1 = polished and artefact-free; 0.5 = acceptable with noticeable flaws;
   0 = poor or badly broken.

Be strict: when you hesitate between two scores, give the lower one.

Reply with ONE JSON object and nothing else: no Markdown, no code fence, no
text before or after it. Use exactly these keys:
{"rationale": "<two to four sentences justifying the scores>",
 "faithfulness": 0 | 0.5 | 1,
 "visual_correctness": 0 | 0.5 | 1,
 "text_accuracy": 0 | 0.5 | 1,
 "aesthetics": 0 | 0.5 | 1,
 "text_accuracy_na": true | false}
"""
"""The built-in system message for the judge (our own wording of the paper's criteria)."""


def load_rubric(path: str | os.PathLike[str] | None) -> str:
    """Return the judge rubric: the built-in one, or the text of a file.

    Args:
        path: A UTF-8 text file holding a custom rubric, or None for
            `DEFAULT_RUBRIC`.

    Returns:
        The rubric text, as written in the file (not stripped).

    Raises:
        ValueError: The file does not exist, cannot be read, or holds only
            whitespace. The message names the path.
    """
    return DEFAULT_RUBRIC if path is None else load_judge_text(path, "rubric")


def load_judge_text(path: str | os.PathLike[str], what: str) -> str:
    """Return a judge text (rubric, user template) read from a file, verbatim.

    Args:
        path: A UTF-8 text file.
        what: What the file holds, for the error messages.

    Raises:
        ValueError: The file does not exist, cannot be read, or holds only
            whitespace. The message names the path.
    """
    text_path = Path(path)
    try:
        text = text_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{what} file not found: {text_path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {what} file {text_path}: {exc}") from exc
    # An empty text would let the judge improvise its own scale, which
    # silently breaks comparability with the paper's numbers.
    if not text.strip():
        raise ValueError(f"{what} file is empty: {text_path}")
    return text
