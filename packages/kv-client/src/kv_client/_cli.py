"""``kv``: run one command against a kv server and print its reply (the seeds' client.l).

    kv [options] COMMAND [args...]     one command; ``--`` as the last word reads the
                                       last argument from STDIN
    kv [options] SUBSCRIBE channel...  print each message as it arrives (also PSUBSCRIBE
                                       pattern...; --count N stops after N; _cli_subscribe)
    kv [options]                       a redis-cli style prompt (module _cli_repl), on one
                                       connection so that MULTI ... EXEC work (_cli_session)

Arguments are typed from the command table, so that ``kv INCRBY n 5`` sends the
integer 5 the server requires: INTEGER arguments become ints, NUMBER arguments
ints or floats, everything else stays text; ``--typed`` reads VALUE arguments as
JSON instead. Text that does not parse as a number is sent as text, and the
server's error then names the argument.

Exit status: 0 on success, 1 when the server answers an error or the connection
fails, 2 for a usage error, 130 after Ctrl-C. Output rules are in _cli_format.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

from kv_protocol.commands import Arg, ArgKind, CommandSpec, resolve
from kv_protocol.errors import KvError, ServerError
from kv_protocol.records import tagged

from ._cli_format import commands_text, error_text, reply_lines
from ._cli_options import PASSWORD_FILE, Crypt, UsageError, client_options, crypt_options
from ._cli_repl import run_repl
from ._cli_session import PromptSession
from ._cli_subscribe import SUBSCRIBING, run_subscribe
from ._commands import CONNECTION_STATE
from ._config import ClientConfig
from ._encryption import decrypt_reply, encrypt_arguments
from ._errors import ConnectionError, TimeoutError
from ._sync import Client
from ._version import __version__

DEFAULT_DIR: Final = Path("data")
"""kv-server's default data directory, relative to where it was started."""
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
"""128 + SIGINT, what shells report for a command ended by Ctrl-C."""
STDIN_MARKER: Final = "--"

_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
# Python's float() also takes "1_0" and surrounding spaces, which the server's
# callers would not expect to be numbers; inf and nan pass, as the server decides.
_FLOAT: Final = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan)",
                           re.IGNORECASE)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kv", allow_abbrev=False,
        usage="kv [options] [COMMAND [args ...]] [--]",
        description="Send one command to a kv server and print the reply; without "
                    "COMMAND, read commands at a prompt (or one per line from a pipe).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
Options go before COMMAND; every word after COMMAND is an argument.
A last word "--" reads the last argument from STDIN, kept exactly (text if it
is UTF-8, else bytes): kv SET motd -- < motd.txt

Password: --pass, else the URL's, else $KV_PASS, else the first line of
DIR/kv.pass. Address: --host/--port/--unix, else --url, else $KV_URL.

Output: text as is; bytes as UTF-8 or with \\xNN escapes; null as an empty
line; true/false; a list one item per line; a map "key<TAB>value" lines; INFO
as "# Section" and "field:value" lines. --json prints lossless tagged JSON.
Errors go to STDERR. Exit status: 0 success, 1 error reply or connection
failure, 2 usage error, 130 interrupted.

SUBSCRIBE and PSUBSCRIBE print one "channel<TAB>payload" line per message (--json:
one object) until Ctrl-C, or --count messages. Blocking pops (BLPOP q 5) wait their
own timeout on top of --timeout. At the prompt, MULTI ... EXEC and WATCH work.

Examples:
  kv --typed SET answer 42          kv GET answer
  kv --typed RPUSH l '"a"' 1.5      kv LRANGE l 0 -1
  kv --json HGETALL h               kv --poll 1 --count 5 DBSIZE
  kv SUBSCRIBE news                 kv BLPOPRPUSH jobs doing 0
  kv --commands""")
    where = parser.add_argument_group("connection")
    where.add_argument("--host", default=None, help="server host (default 127.0.0.1)")
    where.add_argument("--port", type=int, default=None, help="server TCP port (default 6378)")
    where.add_argument("--unix", type=Path, metavar="PATH", help="connect to this Unix socket")
    where.add_argument("--pass", dest="password", metavar="P",
                       help="the password (visible in the process list: prefer KV_PASS)")
    where.add_argument("--dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
                       help=f"the server's data directory, where {PASSWORD_FILE} is read "
                            "without --pass or KV_PASS (default ./data)")
    where.add_argument("--name", metavar="N", help="name this connection (see CLIENT LIST)")
    where.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds to wait for each reply (default: no limit)")
    where.add_argument("--url", metavar="URL",
                       help="kv://[:password@]host[:port], kvs://... (TLS) or unix:///path "
                            "(default $KV_URL)")
    tls = parser.add_argument_group("TLS (the server's --tls-port, 6380 by default)")
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS, verifying the server's certificate against the "
                          "system's trusted CAs")
    tls.add_argument("--tls-ca", type=Path, metavar="FILE",
                     help="verify the server's certificate against this CA instead (implies --tls)")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE",
                     help="present this client certificate (with --tls-key; for kv-server --tls-ca)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="the client certificate's key")
    crypt = parser.add_argument_group(
        "client-side encryption (values are encrypted before they leave this process)")
    crypt.add_argument("--encrypt", action="store_true",
                       help="encrypt the command's values with GnuPG to --key")
    crypt.add_argument("--decrypt", action="store_true",
                       help="decrypt encrypted values in the reply with your GnuPG secret key")
    crypt.add_argument("--key", metavar="KEY", default=os.environ.get("KV_GPG_KEY"),
                       help="the GnuPG recipient: fingerprint, key id or email (default $KV_GPG_KEY)")
    crypt.add_argument("--age", type=Path, metavar="IDENTITY_FILE",
                       help="use age instead of GnuPG, with the identity (secret key) in this file")
    run = parser.add_argument_group("running")
    run.add_argument("--typed", action="store_true",
                     help="read VALUE arguments as JSON (42 is an int, '\"42\"' text, "
                          "'[1,\"a\"]' a list; tagged JSON such as '{\"$bytes\": \"AAE=\"}' works)")
    run.add_argument("--json", action="store_true",
                     help="print each reply as one line of lossless tagged JSON")
    run.add_argument("--poll", type=_seconds, metavar="SECONDS",
                     help="run COMMAND again every SECONDS until Ctrl-C or --count")
    run.add_argument("--count", type=_positive, metavar="N",
                     help="run COMMAND N times (with --poll, SECONDS apart); with SUBSCRIBE, "
                          "stop after N messages")
    run.add_argument("--commands", action="store_true", help="list the commands and exit")
    run.add_argument("--version", action="version", version=f"kv {__version__}")
    parser.add_argument("command", nargs="?", metavar="COMMAND", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return seconds


def _positive(text: str) -> int:
    count = int(text) if _INTEGER.fullmatch(text) else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count >= 1")
    return count


def convert_argument(word: str, arg: Arg, typed: bool, where: str) -> object:
    """One command-line word as the kind of argument ``arg`` declares."""
    if arg.kind is ArgKind.INTEGER:
        return int(word) if _INTEGER.fullmatch(word) else word
    if arg.kind is ArgKind.NUMBER:
        if _INTEGER.fullmatch(word):
            return int(word)
        return float(word) if _FLOAT.fullmatch(word) else word
    if arg.kind is ArgKind.VALUE and typed:
        try:
            return tagged.loads(word)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc} (--typed reads values as JSON: 42, 1.5, true, "
                             f"null, \"text\", [1,\"a\"], {{\"k\":1}})") from None
    return word


def convert_argv(words: Sequence[str], typed: bool) -> list[object]:
    """A command's words as the argv to send, typed from the command table.

    An unknown command's arguments stay text, as do surplus arguments: the server
    answers those with its own error.

    Raises:
        UsageError: with ``typed``, a VALUE argument that is not JSON.
    """
    spec = resolve(words)
    if spec is None:
        return list(words)
    argv: list[object] = list(words[: spec.words])
    option_arg: Arg | None = None
    for index, word in enumerate(words[spec.words:]):
        arg = option_arg or _declared(spec, index, len(words) - spec.words)
        option_arg = None
        if arg is None:
            argv.append(word)
            continue
        if arg.kind is ArgKind.OPTIONS:
            option = next((o for o in arg.options if o.word == word.upper()), None)
            option_arg = option.arg if option is not None else None
            argv.append(word)
            continue
        where = f"argument {index + 1} ({arg.name}) of {spec.name}"
        argv.append(convert_argument(word, arg, typed, where))
    return argv


def _declared(spec: CommandSpec, index: int, argc: int) -> Arg | None:
    """The declaration of argument ``index`` of ``argc``, or None past the last one there
    can be."""
    if index >= len(spec.positional) and spec.options is None and not spec.tail:
        return None
    return spec.arg_at(index, argc)


def read_stdin_argument(stream: BinaryIO) -> str | bytes:
    """All of STDIN, exactly: text if it is UTF-8, else bytes (redis-cli's ``-x``)."""
    data = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


Execute = Callable[..., Any]
"""Runs one command and returns its reply (an error reply raises): a client's or a
session's ``execute``."""


def run_command(execute: Execute, argv: list[object], as_json: bool) -> bool:
    """Send one command and print its reply; an error reply goes to STDERR.

    Returns:
        Whether the server answered without an error.

    Raises:
        ConnectionError, TimeoutError: the server cannot be reached, or did not answer.
    """
    spec = resolve(argv)
    try:
        reply = execute(*argv)
    except (ConnectionError, TimeoutError):
        raise
    except KvError as exc:
        print(error_text(exc), file=sys.stderr)
        return False
    lines = reply_lines(reply, spec.name if spec else None, as_json=as_json)
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    return True


def crypted(client: Client, crypt: Crypt | None) -> Execute:
    """``client.execute`` with --encrypt and --decrypt applied around it."""
    if crypt is None:
        return client.execute

    def execute(*args: object) -> Any:
        argv = encrypt_arguments(args, crypt.cipher) if crypt.encrypt else args
        reply = client.execute(*argv)
        return decrypt_reply(argv, reply, crypt.cipher) if crypt.decrypt else reply

    return execute


def _run(args: argparse.Namespace, from_stdin: bool) -> int:
    if args.command is None:
        if from_stdin or args.poll is not None or args.count is not None:
            raise UsageError("--, --poll and --count need a COMMAND")
        return _repl(args)
    words = [args.command, *args.args]
    argv = convert_argv(words, args.typed)
    if from_stdin:
        argv.append(read_stdin_argument(sys.stdin.buffer))
    crypt = crypt_options(args)
    spec = resolve(argv)
    if spec is not None and spec.name in SUBSCRIBING:
        if args.poll is not None:
            raise UsageError(f"--poll does not apply to {spec.name}, which prints each message "
                             "as it arrives (--count N stops after N messages)")
        run_subscribe(_config(args), argv, args.json, args.count, crypt)
        return 0
    if args.count is not None:
        runs: Iterable[int] = range(args.count)
    else:
        runs = itertools.count() if args.poll is not None else range(1)
    succeeded = True
    with contextlib.ExitStack() as stack:
        if spec is not None and spec.name in CONNECTION_STATE:  # MULTI, WATCH...: one connection
            session = PromptSession(_config(args), crypt)
            stack.callback(session.close)
            execute = session.execute
        else:
            execute = crypted(stack.enter_context(_client(args)), crypt)
        for run in runs:
            if run and args.poll:
                time.sleep(args.poll)
            # An error reply does not stop polling: the next run may succeed.
            succeeded = run_command(execute, argv, args.json) and succeeded
    return 0 if succeeded else EXIT_ERROR


def _repl(args: argparse.Namespace) -> int:
    config, crypt = _config(args), crypt_options(args)
    session = PromptSession(config, crypt)
    try:
        session.connect()  # fail now, as redis-cli does, rather than at the first command

        def run(words: list[str]) -> bool:
            try:
                argv = convert_argv(words, args.typed)
                spec = resolve(argv)
                if spec is not None and spec.name in SUBSCRIBING:
                    return _subscribe_at_the_prompt(config, argv, args.json, crypt)
                return run_command(session.execute, argv, args.json)
            except (UsageError, ConnectionError, TimeoutError) as exc:
                print(f"(error) {exc}" if isinstance(exc, UsageError) else error_text(exc),
                      file=sys.stderr)
                return False

        return run_repl(run, f"{config.address}> ")
    finally:
        session.close()


def _subscribe_at_the_prompt(config: ClientConfig, argv: list[object], as_json: bool,
                             crypt: Crypt | None) -> bool:
    """Print the messages until Ctrl-C, which ends the subscription and not the prompt."""
    try:
        run_subscribe(config, argv, as_json, None, crypt)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    except ServerError as exc:
        print(error_text(exc), file=sys.stderr)
        return False
    return True


def _client(args: argparse.Namespace) -> Client:
    try:
        return Client(**client_options(args))
    except ValueError as exc:  # a bad URL, or no password anywhere
        raise UsageError(str(exc)) from None


def _config(args: argparse.Namespace) -> ClientConfig:
    try:
        return ClientConfig.resolve(**client_options(args))
    except ValueError as exc:  # a bad URL, or no password anywhere
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kv`` entry point; returns the exit status (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        # A reply in a script the terminal's encoding lacks must not crash the print.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    words = list(sys.argv[1:] if argv is None else argv)
    from_stdin = bool(words) and words[-1] == STDIN_MARKER
    if from_stdin:
        words.pop()
    parser = build_parser()
    args = parser.parse_args(words)
    if args.commands:
        print(commands_text())
        return 0
    try:
        return _run(args, from_stdin)
    except UsageError as exc:
        parser.error(str(exc))
    except KvError as exc:  # ConnectionError, TimeoutError, a refused handshake
        print(error_text(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (kv --poll 1 GET k | head -3): stop quietly, and point stdout
        # at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
