"""Config, registry and secret handling: errors name what was wrong and what is valid."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

from nova_nb import s2s
from nova_nb.protocol import catalog
from nova_nb.s2s.config import Secret

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKENVALUE"


def test_providers_lists_builtins() -> None:
    assert {"amazon_nova", "local"} <= set(s2s.providers())


def test_unknown_provider_lists_registered() -> None:
    with pytest.raises(s2s.ConfigError, match=r"unknown provider 'openai'.*amazon_nova.*local"):
        s2s.new_provider("openai")


def test_unknown_option_suggests_and_lists() -> None:
    with pytest.raises(s2s.ConfigError) as info:
        s2s.new_provider("amazon_nova", voic_id="matthew")
    assert "Did you mean 'voice_id'" in str(info.value)
    assert "latency_target" in str(info.value)


def test_api_key_gets_bedrock_explanation() -> None:
    with pytest.raises(s2s.ConfigError) as info:
        s2s.new_provider("amazon_nova", api_key="ABSK-something")
    message = str(info.value)
    assert "InvokeModelWithBidirectionalStream" in message
    assert "profile=" in message and "aws_access_key_id" in message
    assert "ABSK-something" not in message


@pytest.mark.parametrize("voice", ["Brian", "Ruth", "joanna"])
def test_polly_voices_are_explained(voice: str) -> None:
    with pytest.raises(s2s.ConfigError) as info:
        s2s.new_provider("amazon_nova", voice_id=voice)
    message = str(info.value)
    assert f"{voice!r} is an Amazon Polly voice" in message
    assert "matthew" in message and "tiffany" in message


def test_voice_per_model_and_language() -> None:
    assert s2s.default_config().replace(voice_id="Matthew").voice_id == "matthew"
    with pytest.raises(s2s.ConfigError, match=r"speaks en-GB, not fr-FR.*ambre"):
        s2s.default_config().replace(language="fr-FR", voice_id="amy")
    # tina is a Nova 2 voice; Nova 1 has greta instead.
    with pytest.raises(s2s.ConfigError, match="unknown voice 'tina'"):
        s2s.default_config().replace(model_id=catalog.NOVA_SONIC_V1, language="de-DE", voice_id="tina")
    v1 = s2s.default_config().replace(model_id=catalog.NOVA_SONIC_V1, language="de-DE")
    assert v1.resolved_voice_id == "greta"
    # Nova 2's polyglot voices speak every language.
    assert s2s.default_config().replace(language="de-DE", voice_id="matthew").voice_id == "matthew"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"latency_target": "fast"}, "'low', 'medium' or 'high'"),
        ({"input_sample_rate": 44100}, "8000, 16000 or 24000"),
        ({"output_sample_rate": "24000"}, "8000, 16000 or 24000"),
        ({"frame_ms": 33}, "milliseconds"),
        ({"language": "ja-JP"}, "supports"),
        ({"model_id": "amazon.nova-pro-v1:0"}, "amazon.nova-2-sonic-v1:0"),
        ({"temperature": 2.0}, "0.0 to 1.0"),
        ({"top_p": float("nan")}, "0.0 to 1.0"),
        ({"max_tokens": 0}, "1 to 10000"),
        ({"endpoint_uri": "http://localhost:8080"}, "https://"),
        ({"aws_access_key_id": "AKID"}, "together"),
        ({"aws_session_token": TOKEN}, "needs aws_access_key_id"),
        ({"close_timeout_s": 0}, "more than 0"),
        ({"region": "us east"}, "region"),
    ],
)
def test_invalid_values_say_what_is_valid(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(s2s.ConfigError) as info:
        s2s.new_provider("amazon_nova", **options)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_latency_target_mapping_is_ours_and_nova1_has_none() -> None:
    c = s2s.default_config()
    assert {t: c.replace(latency_target=t).endpointing_sensitivity for t in s2s.LATENCY_TARGETS} == {
        "low": "HIGH",
        "medium": "MEDIUM",
        "high": "LOW",
    }
    assert c.replace(model_id=catalog.NOVA_SONIC_V1).endpointing_sensitivity is None


def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    provider = s2s.new_provider(
        "amazon_nova",
        aws_access_key_id="AKIDEXAMPLE1234",
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
    )
    config = provider.config
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config %s %r", config, config)
    shown = " ".join(
        [
            repr(config),
            str(config),
            repr(provider),
            f"{config}",
            caplog.text,
            f"{config.aws_secret_access_key}",
        ]
    )
    assert SECRET not in shown and TOKEN not in shown
    assert "AKIDEXAMPLE1234" not in shown  # only its last four characters
    assert "…1234" in repr(config)
    assert config.aws_secret_access_key is not None and config.aws_secret_access_key.reveal() == SECRET
    with pytest.raises(TypeError):
        pickle.dumps(config.aws_secret_access_key)
    # Errors about the credentials don't echo them either.
    with pytest.raises(s2s.ConfigError) as info:
        s2s.new_provider("amazon_nova", aws_secret_access_key=SECRET)
    assert SECRET not in str(info.value)


def test_secret_equality_and_repr() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert "a" not in repr(Secret("a" * 10))


def test_config_is_frozen_and_replace_validates() -> None:
    c = s2s.default_config()
    with pytest.raises(AttributeError):
        c.region = "eu-west-1"  # type: ignore[misc]
    assert c.replace(region="eu-west-1").region == "eu-west-1"
    with pytest.raises(s2s.ConfigError, match="unknown Config field"):
        c.replace(colour="blue")
    with pytest.raises(s2s.ConfigError, match=r"s2s\.Config"):
        s2s.new_provider("amazon_nova", {"region": "x"})  # type: ignore[arg-type]


def test_register_custom_provider() -> None:
    class Echo(s2s.S2SProvider):
        def __init__(self, config: s2s.Config, greeting: str = "hi") -> None:
            self.name, self.config, self.greeting = "echo_test", config, greeting

    s2s.register_provider("echo_test", Echo, extra_options=["greeting"])
    provider = s2s.new_provider("echo_test", greeting="hello", language="en-GB")
    assert isinstance(provider, Echo) and provider.greeting == "hello"
    assert provider.config.provider == "echo_test" and provider.config.language == "en-GB"
    assert not isinstance(provider, s2s.StreamingS2SProvider)  # the seed's type assertion, in Python
    assert "echo_test" in s2s.providers()
    with pytest.raises(s2s.ConfigError, match="identifier"):
        s2s.register_provider("not a name", Echo)


def test_history_and_tool_validation() -> None:
    assert s2s.HistoryMessage.coerce({"role": "user", "content": "hi"}) == s2s.HistoryMessage("USER", "hi")
    assert s2s.HistoryMessage.coerce(("assistant", "yo")).role == "ASSISTANT"
    with pytest.raises(s2s.ConfigError, match="'USER' or 'ASSISTANT'"):
        s2s.HistoryMessage("SYSTEM", "x")  # type: ignore[arg-type]
    with pytest.raises(s2s.ConfigError, match="non-empty"):
        s2s.HistoryMessage("USER", "  ")
    with pytest.raises(s2s.ConfigError, match="letters, digits"):
        s2s.Tool("get weather", "desc")
    with pytest.raises(s2s.ConfigError, match="JSON-serialisable"):
        s2s.Tool("t", "desc", input_schema={"x": object()})


def test_provider_is_not_an_option() -> None:
    with pytest.raises(s2s.ConfigError, match="unknown option 'provider'"):
        s2s.new_provider("local", provider="amazon_nova")


def test_default_model_is_nova_2_5() -> None:
    c = s2s.default_config()
    assert c.model_id == catalog.DEFAULT_MODEL_ID == catalog.NOVA_2_5_SONIC == "amazon.nova-2-5-sonic"
    assert c.endpointing_sensitivity == "MEDIUM" and c.resolved_voice_id == "matthew"
    provider = s2s.new_provider("amazon_nova")
    assert provider.config.model_id == catalog.NOVA_2_5_SONIC  # type: ignore[attr-defined]


def test_retired_model_warns_once_per_config_and_never_fails() -> None:
    import warnings

    from nova_nb.errors import NovaNbWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = s2s.default_config().replace(model_id=catalog.NOVA_SONIC_V1)
    assert c.model_id == catalog.NOVA_SONIC_V1
    (w,) = [w for w in caught if issubclass(w.category, NovaNbWarning)]
    assert issubclass(w.category, UserWarning) and w.filename == __file__  # points at the caller's line
    for part in (catalog.NOVA_SONIC_V1, "2026-09-14", "model-card-amazon-nova-sonic", catalog.NOVA_2_5_SONIC):
        assert part in str(w.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current models warn about nothing
        s2s.default_config().replace(model_id=catalog.NOVA_2_SONIC)
        s2s.default_config()


def test_choose_provider_is_the_emulator_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Credentials on the machine never switch to the paid service by themselves.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNOTAREALKEY12345")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.delenv("NOVA_NB_PROVIDER", raising=False)
    assert s2s.choose_provider() == "local"
    said = capsys.readouterr().out
    assert "local" in said and "NOVA_NB_PROVIDER=amazon_nova" in said and "not-a-real-secret" not in said
    monkeypatch.setenv("NOVA_NB_PROVIDER", "amazon_nova")
    assert s2s.choose_provider() == "amazon_nova"
    assert "billed" in capsys.readouterr().out
    assert s2s.choose_provider("local", quiet=True) == "local" and capsys.readouterr().out == ""
    monkeypatch.setenv("NOVA_NB_PROVIDER", "openai")
    with pytest.raises(s2s.ConfigError, match=r"unknown provider 'openai' \(from NOVA_NB_PROVIDER\).*local"):
        s2s.choose_provider()
