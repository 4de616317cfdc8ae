"""``kv-server``: parse flags into a ServerConfig, find the password, run the server.

A password is required, as in the original system. Without ``--pass`` or
``--pass-file`` the server uses DIR/kv.pass, generating a strong one there (mode
0600) on first start, so the first command in the README just works. The password
itself is never printed or logged; the ready line says where it is. A read-only
password (``--readonly-pass`` / ``--readonly-pass-file``) is never generated: readers
exist only when the operator asks for them (docs/security.md).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import secrets
import stat
import sys
from pathlib import Path

import trio

from kv_protocol.framing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_SIZE
from kv_protocol.handshake import DEFAULT_PBKDF2_ITERATIONS

from ._config import (
    CLIENT_OUTPUT_LIMIT,
    DEFAULT_BIND,
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    HANDSHAKE_TIMEOUT_S,
    MAX_ARGUMENTS,
    MAX_CLIENTS,
    PUBSUB_BUFFER_LIMIT,
    SHUTDOWN_GRACE_S,
    FsyncPolicy,
    MaxmemoryPolicy,
    ServerConfig,
)
from ._recovery import StartupError
from ._server import serve
from ._version import __version__

PASSWORD_FILE = "kv.pass"
# 32 random bytes, URL-safe base64: 256 bits, far beyond any offline guessing.
GENERATED_PASSWORD_BYTES = 32

log = logging.getLogger("kv_server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kv-server",
        description="kv: a typed, Redis-inspired key/value server for Python programs.",
        epilog="Without --pass or --pass-file the password is read from DIR/kv.pass, "
               "which is generated (mode 0600) on first start. Clients read it from there "
               "or from KV_PASS.",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--pass", dest="password", metavar="P",
                        help="the password (visible in the process list: prefer --pass-file)")
    secret.add_argument("--pass-file", type=Path, metavar="F",
                        help="read the password from the first line of F")
    readonly = parser.add_mutually_exclusive_group()
    readonly.add_argument("--readonly-pass", metavar="P",
                          help="a second password whose connections may only read: write and "
                          "admin commands answer NOPERM (off by default; prefer "
                          "--readonly-pass-file)")
    readonly.add_argument("--readonly-pass-file", type=Path, metavar="F",
                          help="read the read-only password from the first line of F")
    parser.add_argument("--bind", action="append", metavar="ADDR",
                        help="address to listen on, repeatable (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--unix", type=Path, metavar="PATH",
                        help="also listen on a Unix socket at PATH (mode 0600)")
    parser.add_argument("--no-tcp", action="store_true",
                        help="no plain TCP listeners (the Unix socket and TLS still listen)")
    parser.add_argument("--tls-cert", type=Path, metavar="FILE",
                        help="PEM certificate (chain): with --tls-key, also listen for TLS on "
                        "each bind address")
    parser.add_argument("--tls-key", type=Path, metavar="FILE",
                        help="PEM private key of --tls-cert, unencrypted (keep it mode 0600)")
    parser.add_argument("--tls-ca", type=Path, metavar="FILE",
                        help="require TLS clients to present a certificate signed by this CA")
    parser.add_argument("--tls-port", type=int, default=DEFAULT_TLS_PORT, metavar="N",
                        help=f"TLS port (default {DEFAULT_TLS_PORT}; 0 picks a free port)")
    parser.add_argument("--dir", type=Path, default=Path("data"), metavar="DIR",
                        help="data directory (default ./data)")
    parser.add_argument("--appendfsync", choices=[str(p) for p in FsyncPolicy],
                        default=str(FsyncPolicy.EVERYSEC),
                        help="when the append-only file is fsynced: after every group of writes "
                        "(always: nothing acknowledged is lost), once a second (everysec, the "
                        "default: at most about a second lost on a power cut), or when the "
                        "kernel decides (no)")
    parser.add_argument("--persist", type=float, metavar="SECONDS",
                        help="write a snapshot in the background every SECONDS when the data "
                        "changed (default: only on SAVE/BGSAVE and at start-up after a replay)")
    parser.add_argument("--binary", action="store_true",
                        help="write snapshots in the binary format (default: the format of the "
                        "existing kv.db, else plaintext)")
    parser.add_argument("--aof-load-truncated", action="store_true",
                        help="start even if the AOF's last record is incomplete (a crash while "
                        "writing it), dropping that record with a warning")
    parser.add_argument("--verbose", action="store_true",
                        help="log every connection and command (never values or the password)")
    parser.add_argument("--auth-iterations", type=int, default=DEFAULT_PBKDF2_ITERATIONS,
                        metavar="N", help="PBKDF2 iterations for the handshake key "
                        f"(default {DEFAULT_PBKDF2_ITERATIONS})")
    parser.add_argument("--handshake-timeout", type=float, default=HANDSHAKE_TIMEOUT_S,
                        metavar="S",
                        help=f"seconds to complete the handshake (default {HANDSHAKE_TIMEOUT_S:g})")
    parser.add_argument("--shutdown-grace", type=float, default=SHUTDOWN_GRACE_S, metavar="S",
                        help="seconds connections get to finish on shutdown "
                        f"(default {SHUTDOWN_GRACE_S:g})")
    limits = parser.add_argument_group("limits (all shown by INFO clients)")
    limits.add_argument("--maxmemory", type=parse_bytes, default=0, metavar="BYTES",
                        help="estimated memory past which --maxmemory-policy applies; "
                        "suffixes k, m, g (1024-based), e.g. 512m (default 0: no limit)")
    limits.add_argument("--maxmemory-policy", choices=[p.value for p in MaxmemoryPolicy],
                        default=MaxmemoryPolicy.NOEVICTION.value,
                        help="past --maxmemory: refuse writes that may grow memory with OOM "
                        "(noeviction, the default), or evict the least recently used keys "
                        "(allkeys-lru) or the keys nearest their expiry (volatile-ttl)")
    limits.add_argument("--maxclients", type=int, default=MAX_CLIENTS, metavar="N",
                        help=f"connections served at once; more are refused (default {MAX_CLIENTS})")
    limits.add_argument("--timeout", type=float, default=0.0, metavar="S",
                        help="close connections idle for S seconds, except subscribers and "
                        "blocked clients (default 0: never)")
    limits.add_argument("--max-frame-size", type=parse_bytes, default=DEFAULT_MAX_FRAME_SIZE,
                        metavar="BYTES", help="largest frame accepted or sent (default "
                        f"{DEFAULT_MAX_FRAME_SIZE // (1024 * 1024)} MiB); a value must fit in one")
    limits.add_argument("--max-nesting", type=int, default=DEFAULT_MAX_DEPTH, metavar="N",
                        help=f"deepest nesting of lists and maps in a frame (default "
                        f"{DEFAULT_MAX_DEPTH})")
    limits.add_argument("--max-arguments", type=int, default=MAX_ARGUMENTS, metavar="N",
                        help=f"elements of one command (default {MAX_ARGUMENTS})")
    limits.add_argument("--client-output-limit", type=parse_bytes, default=CLIENT_OUTPUT_LIMIT,
                        metavar="BYTES", help="reply bytes a pipelined batch holds before "
                        "they are sent and the rest of it runs (default "
                        f"{CLIENT_OUTPUT_LIMIT // (1024 * 1024)} MiB)")
    limits.add_argument("--pubsub-buffer-limit", type=parse_bytes, default=PUBSUB_BUFFER_LIMIT,
                        metavar="BYTES",
                        help="bytes that may wait for a subscriber before it is disconnected "
                        f"(default {PUBSUB_BUFFER_LIMIT // (1024 * 1024)} MiB, as Redis's "
                        "pubsub client-output-buffer-limit)")
    parser.add_argument("--version", action="version", version=f"kv-server {__version__}")
    return parser


def parse_bytes(text: str) -> int:
    """A size such as ``1048576``, ``512k``, ``64m`` or ``2g`` (1024-based, as Redis's)."""
    units = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3,
             "gb": 1024**3}
    number = text.strip().lower().rstrip("bkmg")
    unit = text.strip().lower()[len(number):]
    if not number.isdigit() or unit not in units:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1048576, 512k or 2g")
    return int(number) * units[unit]


def read_password_file(path: Path) -> str:
    """The first line of ``path``, without its line ending; warns if others may read it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); run chmod 600", path, mode)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0]:
        raise ValueError(f"{path} is empty")
    return lines[0]


def load_or_create_password(data_dir: Path) -> tuple[str, Path]:
    """The password in DIR/kv.pass, created with a random one (mode 0600) if absent."""
    path = data_dir / PASSWORD_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_password_file(path), path
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    log.warning("generated a password into %s", path)
    return password, path


def config_from_args(args: argparse.Namespace) -> tuple[ServerConfig, str]:
    """The config, and a note for the ready line saying where the password comes from."""
    data_dir: Path = args.dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if args.password is not None:
        password, note = args.password, "password from --pass"
    elif args.pass_file is not None:
        password, note = read_password_file(args.pass_file), f"password in {args.pass_file}"
    else:
        password, path = load_or_create_password(data_dir)
        note = f"password in {path}"
    readonly_password: str | None = args.readonly_pass
    if readonly_password is not None:
        note += ", read-only password from --readonly-pass"
    elif args.readonly_pass_file is not None:
        readonly_password = read_password_file(args.readonly_pass_file)
        note += f", read-only password in {args.readonly_pass_file}"
    config = ServerConfig(
        password=password, readonly_password=readonly_password,
        bind=tuple(args.bind or DEFAULT_BIND), port=args.port,
        tcp=not args.no_tcp, unix_path=args.unix, data_dir=data_dir,
        verbose=args.verbose, auth_iterations=args.auth_iterations,
        handshake_timeout_s=args.handshake_timeout, shutdown_grace_s=args.shutdown_grace,
        appendfsync=FsyncPolicy(args.appendfsync), persist_s=args.persist, binary=args.binary,
        aof_load_truncated=args.aof_load_truncated, tls_cert=args.tls_cert,
        tls_key=args.tls_key, tls_ca=args.tls_ca, tls_port=args.tls_port,
        pubsub_buffer_limit=args.pubsub_buffer_limit, maxclients=args.maxclients,
        idle_timeout_s=args.timeout, max_frame_bytes=args.max_frame_size,
        max_depth=args.max_nesting, max_arguments=args.max_arguments,
        client_output_limit=args.client_output_limit, maxmemory=args.maxmemory,
        maxmemory_policy=MaxmemoryPolicy(args.maxmemory_policy),
    )
    return config, note


async def _run(config: ServerConfig, note: str) -> None:
    async with trio.open_nursery() as nursery:
        state = await nursery.start(functools.partial(serve, config, handle_signals=True))
        print(f"kv-server {__version__} ready on {', '.join(state.addresses)} ({note})", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s kv-server[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config, note = config_from_args(args)
        trio.run(_run, config, note)
    except (OSError, ValueError, StartupError) as exc:
        print(f"kv-server: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # trio's nurseries wrap start-up errors
        expected, unexpected = group.split((OSError, ValueError, StartupError))
        if unexpected is not None or expected is None:
            raise
        for leaf in _leaves(expected):
            print(f"kv-server: {leaf}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found
