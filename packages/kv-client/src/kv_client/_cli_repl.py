"""The ``kv`` prompt: what runs when no COMMAND is given.

On a terminal it behaves like redis-cli's: a ``host:port>`` prompt, line editing
and history through :mod:`readline` (kept in ``~/.kv_history``, or in the file
``KV_HISTFILE`` names, written at exit), and tab completion of command names and
of subcommands (``CLIENT K<tab>``) from the command table. From a pipe it reads one
command per line, prints no prompt and keeps no history, so scripts and tests can
drive it.

Each line is split as a shell would (:func:`shlex.split`: quotes and backslashes
work). An error is printed and the prompt continues; ``quit``, ``exit`` or end of
input leave; ``help`` lists the commands and ``help COMMAND`` describes one. How a
command runs and prints is the caller's: this module only reads lines.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Final, TextIO

from kv_protocol.commands import COMMANDS, CONTAINERS, lookup

from ._cli_format import command_help, commands_text

HISTORY_FILE: Final = ".kv_history"
"""In the home directory, beside redis-cli's ``.rediscli_history``."""
HISTORY_LINES: Final = 1000
"""Lines of history kept: enough for weeks of use, small enough to load instantly."""
LEAVE_WORDS: Final = frozenset({"quit", "exit"})
HELP_WORD: Final = "help"

RunCommand = Callable[[list[str]], bool]
"""Runs one command given as words, prints its reply or error; False if it failed."""


def _first_words() -> list[str]:
    names = {spec.name.split()[0] for spec in COMMANDS}
    return sorted(names | {word.upper() for word in (*LEAVE_WORDS, HELP_WORD)})


def complete(line: str) -> list[str]:
    """The completions of the last word of ``line`` (the text before the cursor).

    The first word completes to command names, the word after a container
    (``CLIENT``) to its subcommands; nothing else is completed, as values and keys
    are the user's. Completions follow the case of the word typed (or, for an empty
    word, of the word before it).
    """
    words = line.split()
    current = "" if not words or line[-1:].isspace() else words.pop()
    if not words:
        candidates = _first_words()
    elif len(words) == 1 and words[0].upper() in CONTAINERS:
        container = words[0].upper()
        candidates = sorted(spec.name.split()[1] for spec in COMMANDS
                            if spec.name.startswith(container + " "))
    else:
        return []
    found = [word for word in candidates if word.startswith(current.upper())]
    typed = current or (words[-1] if words else "")
    return [word.lower() for word in found] if typed.islower() else found


def history_path() -> Path:
    """``KV_HISTFILE`` if set, else ``~/.kv_history``."""
    return Path(os.environ.get("KV_HISTFILE") or Path.home() / HISTORY_FILE)


def _load_readline() -> ModuleType | None:
    """readline, set up for completion, or None where Python has none (Windows)."""
    try:
        import readline
    except ImportError:
        return None

    def completer(text: str, state: int) -> str | None:
        matches = complete(readline.get_line_buffer()[: readline.get_endidx()])
        return matches[state] + " " if state < len(matches) else None

    readline.set_completer(completer)
    readline.set_completer_delims(" \t")
    # macOS's Python links libedit, which takes its own binding syntax.
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    return readline


def _terminal_lines(prompt: str) -> Iterator[str]:
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return


def run_repl(run: RunCommand, prompt: str, stdin: TextIO | None = None) -> int:
    """Read and run commands until ``quit``, ``exit`` or end of input.

    Returns:
        The exit status: 0 on a terminal; from a pipe, 1 if any command failed, as a
        shell script's ``set -e`` would want.

    Error handling: errors are printed and reading goes on. Ctrl-C is not caught:
    it ends the session (the caller exits 130), after the history is written.
    """
    stdin = stdin if stdin is not None else sys.stdin
    interactive = stdin.isatty()
    readline = _load_readline() if interactive else None
    history = history_path()
    if readline is not None and history.exists():
        try:
            readline.read_history_file(history)
        except OSError as exc:
            print(f"kv: cannot read the history in {history}: {exc}", file=sys.stderr)
    lines = _terminal_lines(prompt) if interactive else (line.rstrip("\n") for line in stdin)
    failed = False
    try:
        for line in lines:
            try:
                words = shlex.split(line)
            except ValueError as exc:  # an unclosed quote
                print(f"(error) {exc}", file=sys.stderr)
                failed = True
                continue
            if not words:
                continue
            word = words[0].lower()
            if word in LEAVE_WORDS and len(words) == 1:
                break
            succeeded = _help(words[1:]) if word == HELP_WORD else run(words)
            failed = failed or not succeeded
    finally:
        if readline is not None:
            readline.set_history_length(HISTORY_LINES)
            try:
                readline.write_history_file(history)
            except OSError as exc:
                print(f"kv: cannot write the history to {history}: {exc}", file=sys.stderr)
    return 1 if failed and not interactive else 0


def _help(words: list[str]) -> bool:
    if not words:
        print(commands_text())
        return True
    spec = lookup(" ".join(words))
    if spec is None:
        print(f"(error) unknown command {' '.join(words)!r}; 'help' lists them", file=sys.stderr)
        return False
    print("\n".join(command_help(spec)))
    return True
