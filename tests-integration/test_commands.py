"""Every command of the foundation, through kv_client against a real server."""

import os

import pytest

from integration_helpers import ServerProcess
from kv_client import ArgumentTypeError, Client, NotIntegerError, ServerError, WrongTypeError


def test_values_keep_their_types(client: Client) -> None:
    assert client.set("mykey", 12345) is True
    assert client.get("mykey") == 12345
    client.set("yourkey", "12345")
    assert client.get("yourkey") == "12345"
    document = {"name": "kv", "tags": ["fast", b"\x00raw"], "ratio": 0.75, "big": 2**80, "none": None,
                1: "int key", b"bytes key": True}
    client.set(b"doc", document)
    assert client.get(b"doc") == document
    assert client.get("missing") is None


def test_getset_mset_mget(client: Client) -> None:
    assert client.getset("g", 1) is None
    assert client.getset("g", "two") == 1
    assert client.mset({"a": 1, "b": [2], b"c": None}) is True
    assert client.mget("a", "b", b"c", "nope") == [1, [2], None, None]


def test_append_and_strlen(client: Client) -> None:
    assert client.append("s", "héllo") == 6
    assert client.append("s", b" world") == 12
    assert client.get("s") == "héllo world"
    assert client.strlen("s") == 12
    client.set("n", 5)
    with pytest.raises(WrongTypeError, match="APPEND needs a text or bytes value; the key holds int"):
        client.append("n", "1")


def test_keyspace_commands(client: Client) -> None:
    client.mset({"user:1": 1, "user:2": 2, b"user:3": 3, "other": 4})
    assert sorted(client.keys("user:*"), key=repr) == sorted(["user:1", "user:2", b"user:3"], key=repr)
    assert client.exists("user:1", "user:1", "nope") == 2
    assert client.type("user:1") == "string"
    assert client.type("nope") == "none"
    assert client.dbsize() == 4
    assert client.delete("user:1", "nope") == 1
    assert client.flushall() is True
    assert client.dbsize() == 0


def test_ping_and_echo(client: Client) -> None:
    assert client.ping() == "PONG"
    assert client.ping({"x": [1]}) == {"x": [1]}
    assert client.echo(b"\x00\x01") == b"\x00\x01"


def test_info(kv_server: ServerProcess, client: Client) -> None:
    client.set("k", 1)
    client.get("k")
    info = client.info()
    assert set(info) == {"server", "clients", "memory", "persistence", "stats", "keyspace",
                         "errorstats"}
    assert info["server"]["tcp_port"] == kv_server.port
    assert info["server"]["process_id"] == kv_server.proc.pid != os.getpid()
    assert info["keyspace"]["keys"] == 1
    assert info["stats"]["keyspace_hits"] == 1
    assert info["clients"]["connected_clients"] == 1
    assert client.info("commandstats")["commandstats"]["set"]["calls"] == 1


def test_statistics_cannot_be_written(client: Client) -> None:
    with pytest.raises(ServerError, match="unknown command"):
        client.execute("CONFIG", "SET", "keyspace_hits", 0)
    assert client.info("stats")["stats"]["total_error_replies"] == 1


def test_client_subcommands(kv_server: ServerProcess, client: Client) -> None:
    my_id = client.client_id()
    assert client.session is not None and client.session.connection_id == my_id
    assert client.client_getname() == "test"
    client.client_setname("renamed")
    with kv_server.client() as other:
        other_id = other.client_id()
        listed = {c["id"]: c for c in client.client_list()}
        assert listed[my_id]["name"] == "renamed" and listed[my_id]["cmd"] == "client list"
        assert listed[other_id]["addr"].startswith("127.0.0.1:")
        assert client.client_kill(other_id, 99999) == 1


def test_errors_are_typed(client: Client) -> None:
    with pytest.raises(ArgumentTypeError, match="must be text or bytes, got int"):
        client.get(5)  # type: ignore[arg-type]
    with pytest.raises(NotIntegerError):
        client.execute("CLIENT", "KILL", "ID", "x")
    with pytest.raises(ServerError, match="wrong number of arguments for 'get' command"):
        client.execute("GET")
    assert client.ping() == "PONG"  # the connection stays usable
