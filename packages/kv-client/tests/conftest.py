"""Fixtures for kv-client's unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import trio

from client_helpers import DEADLINE_S

Body = Callable[[], Awaitable[None]]


def _run_trio(body: Body) -> None:
    async def bounded() -> None:
        with trio.fail_after(DEADLINE_S):
            await body()

    trio.run(bounded)


def _run_asyncio(body: Body) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(DEADLINE_S):
            await body()

    asyncio.run(bounded())


@pytest.fixture(params=[_run_trio, _run_asyncio], ids=["trio", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[[Body], None]:
    """Runs an async test body under trio, then (the second parametrisation) asyncio:
    the async client must behave the same on both."""
    runner: Callable[[Body], None] = request.param
    return runner
