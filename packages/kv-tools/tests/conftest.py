"""Servers for kv-bench --realtime's tests, started once per session as the tool starts them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from kv_tools._realtime import Wire
from kv_tools._sdk_bench import HOST, _start_redis
from kv_tools._server_process import password_file, redis_pid, start_kv_server
from kv_tools._wire import KvWire, RespWire

START_TIMEOUT_S = 60.0
Servers = dict[str, tuple[Wire, int | None]]  # "kv" / "redis" -> wire and process id


@pytest.fixture(scope="session")
def realtime_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """kv-server and, when installed, redis-server, as kv-bench --realtime starts them."""
    root = tmp_path_factory.mktemp("realtime")
    with ExitStack() as stack:
        password_path, password = password_file(root)
        kv = start_kv_server(root / "kv", password_path, password, start_timeout_s=START_TIMEOUT_S)
        stack.callback(kv.kill)
        found: Servers = {"kv": (KvWire(HOST, kv.port, password), kv.proc.pid)}
        binary = shutil.which("redis-server")
        if binary is not None:
            (root / "redis").mkdir()
            port = _start_redis(binary, root / "redis", "everysec", stack)
            found["redis"] = (RespWire(HOST, port), redis_pid(HOST, port))
        yield found


@pytest.fixture(params=["kv", "redis"])
def realtime_server(request: pytest.FixtureRequest, realtime_servers: Servers) -> tuple[Wire, int | None]:
    """Each server in turn; the redis half is skipped without redis-server."""
    if request.param not in realtime_servers:
        pytest.skip("redis-server is not installed")
    return realtime_servers[request.param]
