"""The one secret scrubber, and error snippets scrubbed before they are cut."""

from __future__ import annotations

from genevolve_async import ServiceUnavailableError, scrub_secrets
from genevolve_async._secrets import scrub_error
from genevolve_async._status import status_error

KEY = "sk-live-abcdefghijklmnopqrstuvwxyz"


def test_whole_keys_and_long_pieces_at_the_edges() -> None:
    assert scrub_secrets(f"a {KEY} b {KEY}", [KEY]) == "a [redacted] b [redacted]"
    assert scrub_secrets(f"cut here: {KEY[:8]}", [KEY]) == "cut here: [redacted]"
    assert scrub_secrets(f"{KEY[-8:]} rest", [KEY]) == "[redacted] rest"
    # Seven characters are not a key: too many ordinary words would match.
    assert scrub_secrets(f"x {KEY[:7]}", [KEY]) == f"x {KEY[:7]}"
    # Placeholders and empty values are not secrets.
    assert scrub_secrets("EMPTY key", ["EMPTY", "", None]) == "EMPTY key"


def test_a_body_echoing_the_key_at_the_cut_is_scrubbed_first() -> None:
    # The key straddles the 300th character, where the snippet is cut.
    body = ("x" * 290 + KEY + " quota exceeded").encode()
    error = status_error(500, None, service="p", where="p", body=body, secrets=[KEY])
    message = str(error)
    assert KEY[:8] not in message and "[redacted]" in message


def test_errors_are_scrubbed_in_place() -> None:
    error = ServiceUnavailableError(f"echo {KEY}", service="p")
    scrub_error(error, [KEY])
    assert str(error) == "echo [redacted]" and error.service == "p"
