"""WebSettings: environment parsing, checks, and keys kept out of repr and errors."""

from __future__ import annotations

import pytest

from examples.webapp._payloads import Redactor
from examples.webapp.settings import SettingsError, WebSettings


def test_from_env_reads_prefixed_variables() -> None:
    settings = WebSettings.from_env(
        {
            "GENEVOLVE_WEB_POLICY_URLS": "http://a:8000/v1, http://b:8000/v1",
            "GENEVOLVE_WEB_POLICY_API_KEY": "sk-abc",
            "GENEVOLVE_WEB_QWEN_URLS": "http://q:8001",
            "GENEVOLVE_WEB_MAX_CONCURRENT_ROLLOUTS": "5",
            "GENEVOLVE_WEB_QUEUE_WAIT": "0.5",
            "GENEVOLVE_WEB_MAX_PROMPT_CHARS": "100",
            "GENEVOLVE_WEB_ALLOW_PRIVATE_HOSTS": "yes",
            "GENEVOLVE_WEB_SIM": "0",
        }
    )
    assert settings.policy_urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert settings.max_concurrent_rollouts == 5
    assert settings.queue_wait == 0.5
    assert settings.allow_private_hosts is True
    assert settings.renderer_name == "qwen-image-edit-service"  # implied by the Qwen URLs
    assert settings.body_limit == 12 * 100 + 16 * 1024
    assert settings.max_rounds == 11  # unset: the default


def test_keys_stay_out_of_repr_and_errors() -> None:
    settings = WebSettings(policy_urls=("http://a/v1",), policy_api_key="sk-hidden",
                           serper_api_key="serper-hidden")  # fmt: skip
    assert "hidden" not in repr(settings)
    with pytest.raises(
        SettingsError, match="GENEVOLVE_WEB_MAX_ROUNDS: expected an integer"
    ) as info:
        WebSettings.from_env({"GENEVOLVE_WEB_MAX_ROUNDS": "sk-looks-like-a-key"})
    assert "sk-looks" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_concurrent_rollouts", 0), ("queue_wait", -1.0), ("default_timeout", 900.0),
     ("max_prompt_chars", 0), ("policy_urls", ())],
)  # fmt: skip
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"WebSettings.{field}"):
        WebSettings(**{"policy_urls": ("http://a/v1",), field: value})  # type: ignore[arg-type]


def test_renderer_variable_accepts_none_and_refuses_unknown() -> None:
    assert WebSettings.from_env({"GENEVOLVE_WEB_RENDERER": "none"}).renderer_name is None
    with pytest.raises(SettingsError, match="GENEVOLVE_WEB_RENDERER"):
        WebSettings.from_env({"GENEVOLVE_WEB_RENDERER": "dall-e"})


def test_redactor_blanks_keys_and_paths_but_keeps_urls() -> None:
    redact = Redactor(["sk-secret-1234"])
    text = (
        "key sk-secret-1234 refused; wrote /tmp/pytest-1/images/a.png and file:///srv/x.png; "
        "asked http://127.0.0.1:8000/v1/chat/completions"
    )
    assert redact(text) == (
        "key [redacted] refused; wrote <path> and <path>; "
        "asked http://127.0.0.1:8000/v1/chat/completions"
    )


def test_redactor_cleans_before_it_cuts_and_catches_cut_keys() -> None:
    key = "sk-secret-1234567890"
    redact = Redactor([key])
    # A cut through the key would leave "sk-secret-12" that no longer matches.
    assert redact(f"refused {key} today", limit=20) == "refused [redacted] t"
    # Somebody else's cut: a long piece of the key at the edge is the key.
    assert redact(f"refused {key[:12]}") == "refused [redacted]"
    assert redact(f"{key[-10:]} was refused") == "[redacted] was refused"
    assert redact("a short sk-s piece stays") == "a short sk-s piece stays"
