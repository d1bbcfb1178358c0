"""Event shapes against the JSON examples of the AWS Nova Sonic pages (sonic-input-events,
sonic-output-events, sonic-barge-in), as transcribed in docs/PROTOCOL.md §3–§5.

The expected values are written out literally, not built with the code under test, so a shape that
is wrong in the builder cannot pass by being wrong in the test too.
"""

from __future__ import annotations

import base64
import json

import pytest

from nova_nb.errors import ProtocolError
from nova_nb.protocol import wire

P, C = "prompt-1", "content-1"


def test_session_start_nova2_matches_doc() -> None:
    assert wire.session_start(
        max_tokens=1024, top_p=0.9, temperature=0.7, endpointing_sensitivity="HIGH"
    ) == {
        "event": {
            "sessionStart": {
                "inferenceConfiguration": {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7},
                "turnDetectionConfiguration": {"endpointingSensitivity": "HIGH"},
            }
        }
    }


def test_session_start_nova1_has_no_turn_detection() -> None:
    event = wire.session_start(max_tokens=1024, top_p=0.9, temperature=0.7)
    assert "turnDetectionConfiguration" not in event["event"]["sessionStart"]


def test_session_start_rejects_unknown_sensitivity() -> None:
    with pytest.raises(ProtocolError, match="endpointingSensitivity"):
        wire.session_start(max_tokens=1, top_p=1, temperature=1, endpointing_sensitivity="FAST")


def test_prompt_start_matches_doc() -> None:
    assert wire.prompt_start(prompt_name=P, voice_id="matthew", output_sample_rate=24000) == {
        "event": {
            "promptStart": {
                "promptName": P,
                "textOutputConfiguration": {"mediaType": "text/plain"},
                "audioOutputConfiguration": {
                    "mediaType": "audio/lpcm",
                    "sampleRateHertz": 24000,
                    "sampleSizeBits": 16,
                    "channelCount": 1,
                    "voiceId": "matthew",
                    "encoding": "base64",
                    "audioType": "SPEECH",
                },
            }
        }
    }


def test_prompt_start_with_tools_sends_schema_as_json_string() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    event = wire.prompt_start(
        prompt_name=P,
        voice_id="tiffany",
        output_sample_rate=16000,
        tools=[wire.ToolSpec("getWeather", "Weather for a city", schema)],
    )
    body = event["event"]["promptStart"]
    assert body["toolUseOutputConfiguration"] == {"mediaType": "application/json"}
    (tool,) = body["toolConfiguration"]["tools"]
    assert tool["toolSpec"]["name"] == "getWeather"
    assert tool["toolSpec"]["description"] == "Weather for a city"
    assert isinstance(tool["toolSpec"]["inputSchema"]["json"], str)
    assert json.loads(tool["toolSpec"]["inputSchema"]["json"]) == schema


def test_text_content_start_matches_doc() -> None:
    assert wire.text_content_start(prompt_name=P, content_name=C, role="SYSTEM", interactive=False) == {
        "event": {
            "contentStart": {
                "promptName": P,
                "contentName": C,
                "type": "TEXT",
                "interactive": False,
                "role": "SYSTEM",
                "textInputConfiguration": {"mediaType": "text/plain"},
            }
        }
    }


def test_text_input_and_content_end_match_doc() -> None:
    assert wire.text_input(prompt_name=P, content_name=C, content="Hi") == {
        "event": {"textInput": {"promptName": P, "contentName": C, "content": "Hi"}}
    }
    assert wire.content_end(prompt_name=P, content_name=C) == {
        "event": {"contentEnd": {"promptName": P, "contentName": C}}
    }
    assert wire.prompt_end(prompt_name=P) == {"event": {"promptEnd": {"promptName": P}}}
    assert wire.session_end() == {"event": {"sessionEnd": {}}}


def test_audio_content_start_matches_doc() -> None:
    assert wire.audio_content_start(prompt_name=P, content_name=C, sample_rate=16000) == {
        "event": {
            "contentStart": {
                "promptName": P,
                "contentName": C,
                "type": "AUDIO",
                "interactive": True,
                "role": "USER",
                "audioInputConfiguration": {
                    "mediaType": "audio/lpcm",
                    "sampleRateHertz": 16000,
                    "sampleSizeBits": 16,
                    "channelCount": 1,
                    "audioType": "SPEECH",
                    "encoding": "base64",
                },
            }
        }
    }


def test_audio_input_is_base64_pcm_and_fast_path_is_identical() -> None:
    pcm = bytes(range(256)) * 4
    event = wire.audio_input(prompt_name=P, content_name=C, pcm=pcm)
    assert event == {
        "event": {
            "audioInput": {"promptName": P, "contentName": C, "content": base64.b64encode(pcm).decode()}
        }
    }
    assert wire.audio_input_bytes(P, C, pcm) == wire.encode(event)
    assert json.loads(wire.audio_input_bytes(P, C, pcm)) == event


def test_tool_result_block_matches_doc() -> None:
    assert wire.tool_content_start(prompt_name=P, content_name=C, tool_use_id="tu-1") == {
        "event": {
            "contentStart": {
                "promptName": P,
                "contentName": C,
                "interactive": False,
                "type": "TOOL",
                "role": "TOOL",
                "toolResultInputConfiguration": {
                    "toolUseId": "tu-1",
                    "type": "TEXT",
                    "textInputConfiguration": {"mediaType": "text/plain"},
                },
            }
        }
    }
    assert wire.tool_result(prompt_name=P, content_name=C, content='{"ok": true}') == {
        "event": {"toolResult": {"promptName": P, "contentName": C, "content": '{"ok": true}'}}
    }


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"temp": 21}, {"temp": 21}),
        ('{"temp": 21}', {"temp": 21}),
        ("sunny", {"result": "sunny"}),
        (21, {"result": 21}),
        ([1, 2], {"result": [1, 2]}),
        ("[1, 2]", {"result": [1, 2]}),
    ],
)
def test_tool_result_content_is_always_a_json_object(result: object, expected: dict[str, object]) -> None:
    # The service rejects a toolResult whose content is not a JSON object (§3).
    assert json.loads(wire.tool_result_content(result)) == expected


def test_split_utf8_respects_byte_limit_and_characters() -> None:
    text = "héllo wörld " * 300  # multi-byte characters, > 1 KB
    pieces = wire.split_utf8(text, 1024)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 1024 for p in pieces)
    assert len(pieces) > 1
    assert wire.split_utf8("") == [""]
    emoji = "🙂" * 600  # 4 bytes each
    assert all(len(p.encode()) <= 1024 for p in wire.split_utf8(emoji))
    assert "".join(wire.split_utf8(emoji)) == emoji


# -- output events -------------------------------------------------------------------------------

IDS = {"sessionId": "s-1", "promptName": P, "completionId": "c-1"}


def test_output_content_start_additional_fields_is_a_json_string() -> None:
    event = wire.output_content_start(
        session_id="s-1", prompt_name=P, completion_id="c-1", content_id="x-1", type="TEXT", role="USER",
        generation_stage="FINAL",
    )  # fmt: skip
    body = event["event"]["contentStart"]
    assert body["additionalModelFields"] == '{"generationStage": "FINAL"}'
    assert isinstance(body["additionalModelFields"], str)
    assert body | IDS == body
    assert wire.generation_stage(body) == "FINAL"


def test_parse_doc_example_content_start() -> None:
    raw = json.dumps(
        {
            "event": {
                "contentStart": {
                    **IDS,
                    "contentId": "x-2",
                    "type": "TEXT",
                    "role": "ASSISTANT",
                    "additionalModelFields": '{"generationStage":"SPECULATIVE"}',
                    "textOutputConfiguration": {"mediaType": "text/plain"},
                }
            }
        }
    ).encode()
    parsed = wire.parse_output(raw)
    assert parsed.name == "contentStart"
    assert parsed.content_id == "x-2"
    assert parsed.completion_id == "c-1"
    assert wire.generation_stage(parsed.body) == "SPECULATIVE"


def test_generation_stage_tolerates_object_missing_and_garbage() -> None:
    assert wire.generation_stage({"additionalModelFields": {"generationStage": "FINAL"}}) == "FINAL"
    assert wire.generation_stage({}) is None
    assert wire.generation_stage({"additionalModelFields": "not json"}) is None


@pytest.mark.parametrize(
    "text", ['{ "interrupted" : true }', '{"interrupted":true}', '  {"interrupted": true}\n']
)
def test_interrupted_marker_variants(text: str) -> None:
    assert wire.is_interrupted_marker(text)


@pytest.mark.parametrize(
    "text", ["interrupted", '{"interrupted": false}', "{ hello }", "I was interrupted {"]
)
def test_not_interrupted_marker(text: str) -> None:
    assert not wire.is_interrupted_marker(text)


def test_tool_use_arguments_single_and_double_encoded() -> None:
    args = {"city": "Paris"}
    assert wire.tool_arguments(json.dumps(args)) == args
    assert wire.tool_arguments(json.dumps(json.dumps(args))) == args  # seen in the wild (§4)
    assert wire.tool_arguments("not json") is None
    assert wire.tool_arguments('"just a string"') is None


def test_usage_event_totals() -> None:
    event = wire.usage_event(
        session_id="s", prompt_name=P, completion_id="c",
        delta_input={"speechTokens": 10, "textTokens": 2}, delta_output={"speechTokens": 5, "textTokens": 3},
        total_input={"speechTokens": 10, "textTokens": 2}, total_output={"speechTokens": 5, "textTokens": 3},
    )  # fmt: skip
    body = event["event"]["usageEvent"]
    assert body["totalInputTokens"] == 12
    assert body["totalOutputTokens"] == 8
    assert body["totalTokens"] == 20
    assert body["details"]["delta"]["input"] == {"speechTokens": 10, "textTokens": 2}


def test_unknown_output_event_is_passed_through() -> None:
    parsed = wire.parse_output(b'{"event": {"somethingNew": {"x": 1}}}')
    assert parsed.name == "somethingNew"
    assert parsed.body == {"x": 1}


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"event": 1}', b'{"event": {}}', b'{"event": {"a": {}, "b": {}}}', b'{"x": {}}'],
)
def test_malformed_events_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        wire.parse_output(raw)


def test_decode_audio_rejects_bad_base64() -> None:
    with pytest.raises(ProtocolError, match="base64"):
        wire.decode_audio({"content": "!!!"})
    assert wire.decode_audio({"content": base64.b64encode(b"\x01\x02").decode()}) == b"\x01\x02"
