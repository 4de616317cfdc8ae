"""Reading a transaction's replies without I/O: MULTI's, each QUEUED, EXEC's envelopes."""

from __future__ import annotations

import pytest

from client_helpers import XOR, ready_core
from kv_client._config import ClientConfig
from kv_client._encryption import encrypt_value
from kv_client._errors import WatchError
from kv_client._recorder import RECORDER, Call, recorded
from kv_client._transaction import exec_results, transaction_commands
from kv_protocol.errors import (
    CommandSyntaxError,
    ExecAbortError,
    NoPermError,
    RemoteProtocolError,
    ServerError,
    WrongTypeError,
)
from kv_protocol.messages import encode_reply
from protocol_helpers import PASSWORD

CONFIG = ClientConfig(PASSWORD)


def calls(*recorded_calls: object) -> list[Call]:
    return [recorded(call) for call in recorded_calls]


QUEUED = [RECORDER.set("k", 1), RECORDER.set("k", 2, nx=True), RECORDER.lpush("k", "x"),
          RECORDER.blpop("q", 1)]


def test_the_request_is_multi_the_commands_and_exec() -> None:
    assert transaction_commands(calls(*QUEUED)) == [
        ("MULTI",), ("SET", "k", 1), ("SET", "k", 2, "NX"), ("LPUSH", "k", "x"), ("BLPOP", "q", 1),
        ("EXEC",)]


def envelopes_reply() -> list[object]:
    """The replies as the core hands them over: EXEC's envelopes are still wire lists."""
    return ["OK", "QUEUED", "QUEUED", "QUEUED", "QUEUED",
            [[0, "OK"], [0, None], [1, "WRONGTYPE", "not a list"], [0, ["q", {"job": 1}]]]]


def test_each_envelope_is_converted_by_its_commands_method() -> None:
    results = exec_results(CONFIG, calls(*QUEUED), envelopes_reply(), raise_on_error=False)
    assert results[:2] == [True, False]              # SET's OK, then NX's null
    assert isinstance(results[2], WrongTypeError) and results[2].message == "not a list"
    assert results[3] == ("q", {"job": 1})           # BLPOP's pair


def test_the_first_error_is_raised_after_every_result_was_read() -> None:
    with pytest.raises(WrongTypeError, match="not a list"):
        exec_results(CONFIG, calls(*QUEUED), envelopes_reply(), raise_on_error=True)


def test_null_from_exec_means_a_watched_key_changed() -> None:
    with pytest.raises(WatchError, match="did not run"):
        exec_results(CONFIG, calls(*QUEUED[:1]), ["OK", "QUEUED", None], raise_on_error=False)


def test_execabort_is_raised_from_the_first_refusal_whatever_raise_on_error_says() -> None:
    refusal = CommandSyntaxError("syntax error")
    replies = ["OK", "QUEUED", refusal, ServerError("later"), ExecAbortError()]
    with pytest.raises(ExecAbortError) as caught:
        exec_results(CONFIG, calls(*QUEUED[:3]), replies, raise_on_error=False)
    assert caught.value.__cause__ is refusal


def test_a_refused_multi_is_raised_as_it_is() -> None:
    with pytest.raises(NoPermError):
        exec_results(CONFIG, calls(*QUEUED[:1]), [NoPermError(), NoPermError(), NoPermError()],
                     raise_on_error=False)


@pytest.mark.parametrize("answer", [[[0, 1]], "OK", [[0, 1], [0, 2], [0, 3]], [[2, "message", "c", 1]]])
def test_an_exec_answer_of_the_wrong_shape_is_the_servers_fault(answer: object) -> None:
    with pytest.raises(RemoteProtocolError):
        exec_results(CONFIG, calls(*QUEUED[:2]), ["OK", "QUEUED", "QUEUED", answer], raise_on_error=False)


def test_values_in_exec_answers_are_decrypted_as_their_commands_replies_are() -> None:
    config = ClientConfig(PASSWORD, encryption=XOR)
    queued = calls(RECORDER.get("card"), RECORDER.lrange("q", 0, -1), RECORDER.keys("*"))
    sealed = encrypt_value({"cvc": 123}, XOR)
    answer = [[0, sealed], [0, [encrypt_value(1, XOR), b"plain"]], [0, [sealed]]]
    assert exec_results(config, queued, ["OK", "QUEUED", "QUEUED", "QUEUED", answer], True) == [
        {"cvc": 123}, [1, b"plain"], [sealed]]          # KEYS answers names: never decrypted


def test_a_transactions_frames_decode_end_to_end() -> None:
    core = ready_core()
    frames = (encode_reply("OK") + encode_reply("QUEUED") + encode_reply("QUEUED")
              + encode_reply([[0, 2], [1, "WRONGTYPE", "no"]]))
    replies = core.receive_replies(frames)
    results = exec_results(CONFIG, calls(RECORDER.incr("n"), RECORDER.lpush("n", 1)), replies,
                           raise_on_error=False)
    assert results[0] == 2 and isinstance(results[1], WrongTypeError)
