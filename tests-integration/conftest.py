"""Fixtures: a real kv-server process per test, and a client connected to it.

The module-scoped pair (``module_kv_server``, ``redis_server``) serves the
differential tests, which run thousands of commands and clean up themselves.
``server`` and ``connect`` hand the module's server, emptied, to tests that open raw
connections (transactions, pub/sub, blocking pops); ``own_connect`` gives a test a
server of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_helpers import (
    STARTED,
    Connect,
    PushConnection,
    RedisProcess,
    ServerProcess,
    kill_workers,
    redis_server_path,
    start_redis_server,
    start_server,
    wait_until,
)
from kv_client import Client


@pytest.fixture(autouse=True)
def no_server_outlives_its_test() -> Iterator[None]:
    """Kill the kv-servers a test started and did not stop (it failed half-way).

    Module-scoped servers start before this fixture (pytest sets up wider scopes
    first), so they are not the test's and are left alone.
    """
    before = len(STARTED)
    yield
    for proc in STARTED[before:]:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    del STARTED[before:]


@pytest.fixture
def kv_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "data")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture
def client(kv_server: ServerProcess) -> Iterator[Client]:
    with kv_server.client(name="test", timeout=30) as kv:
        yield kv


@pytest.fixture(scope="module")
def module_kv_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One kv-server for a whole module; its tests must not depend on a fresh keyspace."""
    server = start_server(tmp_path_factory.mktemp("kv") / "data")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real redis-server for a whole module; skipped where it is not installed."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (CI installs it through noxfile.py's "
                    "ensure_redis_server; here it needs root and apt-get): the comparisons "
                    "with Redis cannot run")
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test() -> Iterator[None]:
    yield
    kill_workers()


@pytest.fixture
def server(module_kv_server: ServerProcess) -> ServerProcess:
    """The module's server (a server per test costs more than the test), emptied, once
    the connections of earlier tests are gone: no key, subscription, watch or waiter."""
    admin = PushConnection(module_kv_server)
    admin.request("FLUSHALL")

    def alone() -> bool:
        return admin.request("INFO", "clients")["clients"]["connected_clients"] == 1  # type: ignore[index,no-any-return]

    wait_until(alone, what="the connections of earlier tests closing")
    admin.close()
    return module_kv_server


def _connector(server: ServerProcess) -> Iterator[Connect]:
    opened: list[PushConnection] = []

    def open_one() -> PushConnection:
        opened.append(PushConnection(server))
        return opened[-1]

    yield open_one
    for conn in opened:
        conn.close()


@pytest.fixture
def connect(server: ServerProcess) -> Iterator[Connect]:
    """Open authenticated connections to the test's server; all closed afterwards."""
    yield from _connector(server)


@pytest.fixture
def own_connect(kv_server: ServerProcess) -> Iterator[Connect]:
    """``connect`` to a server of the test's own, for the tests of bugs that leave
    connections or waiters behind (they would spoil the module's server)."""
    yield from _connector(kv_server)
