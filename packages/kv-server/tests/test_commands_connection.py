import pytest

from kv_protocol.errors import ServerError
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import Call, new_session


def test_ping_and_echo_keep_types(call: Call) -> None:
    assert call("PING") == "PONG"
    assert call("PING", [1, b"x"]) == [1, b"x"]
    assert call("ECHO", {"a": None}) == {"a": None}


def test_client_id_and_names(session: Session, call: Call) -> None:
    assert call("CLIENT", "ID") == session.id
    assert call("CLIENT", "GETNAME") is None
    assert call("CLIENT", "SETNAME", "wörker-1") == "OK"
    assert call("CLIENT", "GETNAME") == "wörker-1"
    assert call("CLIENT", "SETNAME", "") == "OK"
    assert call("CLIENT", "GETNAME") is None


@pytest.mark.parametrize("name", ["two words", "tab\there", "new\nline", "x" * 256, "bell\a"])
def test_client_setname_refuses_awkward_names(call: Call, name: str) -> None:
    with pytest.raises(ServerError, match="cannot contain spaces"):
        call("CLIENT", "SETNAME", name)


def test_client_list_describes_every_session(state: ServerState, session: Session, call: Call) -> None:
    other = new_session(state)
    other.name = "other"
    call("CLIENT", "SETNAME", "me")
    listed = call("CLIENT", "LIST")
    assert [c["id"] for c in listed] == [session.id, other.id]
    me = listed[0]
    assert me["name"] == "me" and me["cmd"] == "client list" and me["transport"] == "test"
    assert set(me) == {"id", "addr", "laddr", "transport", "name", "client-id", "hostname", "user", "age",
                       "idle", "cmd", "commands", "sub", "psub", "multi", "watch", "blocked", "omem"}


async def test_client_kill_interrupts_others_and_lets_itself_finish(
    state: ServerState, session: Session, call: Call
) -> None:
    other = new_session(state)
    assert call("CLIENT", "KILL", "ID", other.id, other.id, 999) == 1
    assert other.closing == f"killed by client {session.id}"
    assert other.cancel_scope.cancel_called
    assert call("CLIENT", "KILL", "ID", other.id) == 0  # already closing
    assert call("CLIENT", "KILL", "ID", session.id) == 1
    assert session.closing is not None and not session.cancel_scope.cancel_called
