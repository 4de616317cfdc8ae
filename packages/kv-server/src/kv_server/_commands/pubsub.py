"""Pub/sub commands (``_pubsub.py``): SUBSCRIBE and friends, PUBLISH, PUBSUB."""

from __future__ import annotations

from typing import Any

from kv_server._dispatch import command
from kv_server._glob import compile_glob
from kv_server._session import Session


def _count(ctx: Session) -> int:
    ctx.update()
    return ctx.pubsub.count if ctx.pubsub is not None else 0


@command("SUBSCRIBE")
def subscribe(ctx: Session, argv: list[Any]) -> int:
    for channel in argv[1:]:
        ctx.state.pubsub.subscribe(ctx, channel)
    return _count(ctx)


@command("UNSUBSCRIBE")
def unsubscribe(ctx: Session, argv: list[Any]) -> int:
    if ctx.pubsub is not None:
        for channel in argv[1:] or list(ctx.pubsub.channels):
            ctx.state.pubsub.unsubscribe(ctx, channel)
    return _count(ctx)


@command("PSUBSCRIBE")
def psubscribe(ctx: Session, argv: list[Any]) -> int:
    for pattern in argv[1:]:
        ctx.state.pubsub.psubscribe(ctx, pattern)
    return _count(ctx)


@command("PUNSUBSCRIBE")
def punsubscribe(ctx: Session, argv: list[Any]) -> int:
    if ctx.pubsub is not None:
        for pattern in argv[1:] or list(ctx.pubsub.patterns):
            ctx.state.pubsub.punsubscribe(ctx, pattern)
    return _count(ctx)


@command("PUBLISH")
def publish(ctx: Session, argv: list[Any]) -> int:
    return ctx.state.pubsub.publish(argv[1], argv[2], ctx.state.config.max_frame_bytes)


@command("PUBSUB CHANNELS")
def pubsub_channels(ctx: Session, argv: list[Any]) -> list[object]:
    channels: list[object] = list(ctx.state.pubsub.channels)
    if len(argv) > 2:
        matches = compile_glob(argv[2])
        channels = [channel for channel in ctx.state.pubsub.channels if matches(channel)]
    return channels


@command("PUBSUB NUMSUB")
def pubsub_numsub(ctx: Session, argv: list[Any]) -> dict[object, int]:
    channels = ctx.state.pubsub.channels
    return {channel: len(channels.get(channel, ())) for channel in argv[2:]}


@command("PUBSUB NUMPAT")
def pubsub_numpat(ctx: Session, argv: list[Any]) -> int:
    return len(ctx.state.pubsub.patterns)
