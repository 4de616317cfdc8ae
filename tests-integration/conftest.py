"""Fixtures: a real kv-server process per test, and a client connected to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_helpers import ServerProcess, start_server
from kv_client import Client


@pytest.fixture
def kv_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "data")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture
def client(kv_server: ServerProcess) -> Iterator[Client]:
    with kv_server.client(name="test", timeout=30) as kv:
        yield kv
