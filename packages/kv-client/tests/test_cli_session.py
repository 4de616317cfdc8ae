"""The prompt's one connection: the transaction state it follows, and when it reconnects."""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from client_helpers import XOR, HangUp, ScriptedServer
from kv_client._cli_options import Crypt
from kv_client._cli_session import PromptSession
from kv_client._config import ClientConfig
from kv_client._encryption import decrypt_value, encrypt_value
from kv_client._errors import ConnectionError
from kv_protocol.errors import ExecAbortError, WrongTypeError
from kv_protocol.messages import encode_error, encode_reply

SEALED = encrypt_value({"cvc": 123}, XOR)


class Transactions:
    """MULTI, QUEUED, EXEC as a server answers them; GET answers an encrypted value."""

    def __init__(self) -> None:
        self.in_multi = False
        self.queued: list[list[object]] = []
        self.stored: list[object] = []

    def __call__(self, command: list[object]) -> bytes | HangUp:
        name = command[0]
        if name == "MULTI":
            self.in_multi, self.queued = True, []
            return encode_reply("OK")
        if name == "EXEC":
            self.in_multi = False
            return encode_reply([[0, SEALED] if queued[0] == "GET" else [1, "WRONGTYPE", "no"]
                                 for queued in self.queued])
        if name == "HANGUP":
            self.in_multi = False  # the connection's transaction ends with it
            return HangUp(encode_reply("bye"))
        if name == "WATCH":
            return encode_reply("OK")
        if self.in_multi:
            self.queued.append(command)
            return encode_reply("QUEUED")
        if name == "SET":
            self.stored.append(command[2])
            return encode_reply("OK")
        return encode_reply(SEALED)


def session(server: ScriptedServer, crypt: Crypt | None = None) -> PromptSession:
    return PromptSession(ClientConfig.resolve(**server.config()), crypt)


def test_every_command_goes_on_one_connection_and_exec_values_are_decrypted_by_their_command() -> None:
    decrypting = Crypt(XOR, encrypt=False, decrypt=True)
    with ScriptedServer(Transactions()) as server, closing(session(server, decrypting)) as prompt:
        assert prompt.execute("MULTI") == "OK"
        assert prompt.execute("GET", "card") == "QUEUED"
        assert prompt.execute("LPUSH", "card", "x") == "QUEUED"
        assert prompt.execute("EXEC") == [[0, {"cvc": 123}], [1, "WRONGTYPE", "no"]]
        assert prompt.execute("GET", "card") == {"cvc": 123}
        assert {number for number, _ in server.commands} == {1}


def test_encrypt_only_sends_ciphertext_and_shows_replies_as_stored() -> None:
    transactions = Transactions()
    encrypting = Crypt(XOR, encrypt=True, decrypt=False)
    with ScriptedServer(transactions) as server, closing(session(server, encrypting)) as prompt:
        assert prompt.execute("SET", "card", "4111") == "OK"
        assert decrypt_value(transactions.stored[0], XOR) == "4111"  # type: ignore[arg-type]
        assert prompt.execute("GET", "card") == SEALED


def test_error_replies_raise_and_leave_the_transaction_to_the_server() -> None:
    def refusing(command: list[object]) -> bytes:
        if command[0] == "EXEC":
            return encode_error(ExecAbortError())
        return encode_reply("OK") if command[0] == "MULTI" else encode_error(WrongTypeError())

    with ScriptedServer(refusing) as server, closing(session(server)) as prompt:
        prompt.execute("MULTI")
        with pytest.raises(WrongTypeError):
            prompt.execute("LPUSH", "k", 1)
        with pytest.raises(ExecAbortError):
            prompt.execute("EXEC")


def closed_by_the_server(prompt: PromptSession) -> None:
    assert prompt.execute("HANGUP") == "bye"
    time.sleep(0.1)  # the server's FIN follows its reply


def test_a_connection_closed_while_idle_is_replaced() -> None:
    with ScriptedServer(Transactions()) as server, closing(session(server)) as prompt:
        closed_by_the_server(prompt)
        assert prompt.execute("GET", "card") == SEALED
        assert server.connections == 2


@pytest.mark.parametrize("start", [["MULTI"], ["WATCH", "card"]])
def test_a_transaction_or_watch_lost_with_the_connection_is_reported(start: list[object]) -> None:
    with ScriptedServer(Transactions()) as server, closing(session(server)) as prompt:
        assert prompt.execute(*start) == "OK"
        closed_by_the_server(prompt)
        with pytest.raises(ConnectionError, match="transaction or watch in progress is gone"):
            prompt.execute("GET", "card")
        assert prompt.execute("GET", "card") == SEALED       # a fresh connection, no state
        assert server.connections == 2
