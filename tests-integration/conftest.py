"""Fixtures: a real kv-server process per test, and a client connected to it.

The module-scoped pair (``module_kv_server``, ``redis_server``) serves the
differential tests, which run thousands of commands and clean up themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_helpers import (
    STARTED,
    RedisProcess,
    ServerProcess,
    redis_server_path,
    start_redis_server,
    start_server,
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
