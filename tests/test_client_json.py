"""Bounded client JSON and strict outgoing JSON, without Ray (actors/wire/client_json.py, actors/wire/protocol.py)."""

from __future__ import annotations

import json

import pytest

from vani.actors.wire import client_json, protocol
from vani.actors.wire.client_json import MAX_DEPTH, MAX_TEXT_BYTES, ClientJsonError
from vani.gateway.session_route import _check_text

TYPES = frozenset({"ping", "mute"})


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        '{"a":' * 5000 + "1" + "}" * 5000,
        '{"type":"ping","id":' + "[" * 5000 + "]" * 5000 + "}",
        '{"type":"ping","id":' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}",
        "[" * 60_000,  # unterminated as well
    ],
)
def test_deep_nesting_is_bad_json_not_a_crash(text):
    assert _check_text(text, TYPES) == ("bad_json", f"JSON nested deeper than {MAX_DEPTH} levels")


def test_nesting_up_to_the_bound_is_fine():
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert _check_text(f'{{"type":"ping","id":{inner}}}', TYPES) is None


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[1, 2e400]"])
def test_non_finite_numbers_are_bad_json(number):
    code, message = _check_text(f'{{"type":"ping","id":{number}}}', TYPES)
    assert code == "bad_json" and "finite" in message


def test_finite_numbers_pass():
    assert _check_text('{"type":"ping","id":1.5e300,"t":-2,"x":[0.0, 1E-300]}', TYPES) is None


def test_size_bound_in_bytes_not_characters():
    pad = MAX_TEXT_BYTES - len('{"type":"ping","id":""}')
    assert _check_text('{"type":"ping","id":"' + "x" * pad + '"}', TYPES) is None
    assert _check_text('{"type":"ping","id":"' + "x" * (pad + 1) + '"}', TYPES)[0] == "message_too_large"
    # 2-byte UTF-8 characters: under the bound in characters, over it in bytes
    assert _check_text('{"type":"ping","id":"' + "é" * (pad // 2 + 1) + '"}', TYPES)[0] == "message_too_large"


@pytest.mark.parametrize(
    "text,code",
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type":1}', "bad_message"),
        ('{"type":"x"}', "unknown_type"),
    ],
)
def test_the_other_answers_are_unchanged(text, code):
    assert _check_text(text, TYPES)[0] == code


def test_unknown_type_message_does_not_echo_a_huge_type():
    code, message = _check_text(json.dumps({"type": "y" * 60000}), TYPES)
    assert code == "unknown_type" and len(message) < 200


def test_parse_message_raises_with_the_client_code():
    with pytest.raises(ClientJsonError) as err:
        client_json.parse_message("[" * 3000)
    assert err.value.code == "bad_json"
    assert client_json.parse_message('{"type":"ping","id":7}') == {"type": "ping", "id": 7}


def test_dumps_never_emits_non_finite_numbers():
    text = protocol.dumps({"type": "LatencyReport", "a": float("nan"), "b": [float("inf"), 1.0], "c": {"d": -1e999}})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"emitted {name}")) == {
        "type": "LatencyReport",
        "a": None,
        "b": [None, 1.0],
        "c": {"d": None},
    }
    assert protocol.dumps({"type": "pong", "id": 1}) == '{"type":"pong","id":1}'
