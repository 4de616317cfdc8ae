"""How the ``kv`` command prints replies, errors and the command list.

Plain output is for shell tools (``cut``, ``grep``, ``while read``), so its rules
are few and fixed; ``--json`` is for programs and is lossless. The rules:

- text prints as it is; bytes print as text when they are valid UTF-8, otherwise
  every undecodable byte is written ``\\xNN`` and every backslash is doubled, so
  the text is unambiguous;
- integers print in decimal, floats as Python's ``repr`` (``1.0``, ``1e+16``,
  ``inf``), booleans as ``true`` / ``false``, null as an empty line (as redis-cli
  prints nil when its output is not a terminal);
- a list prints one item per line (none for an empty list) and a map one
  ``key<TAB>value`` line per entry. So that every item stays on its own line, an
  item whose text holds a tab or a line break prints as a JSON string, and a list
  or map inside a list or map prints as compact tagged JSON;
- INFO prints in Redis's layout: ``# Section`` lines, ``field:value`` lines, a blank
  line between sections; a nested map prints ``k=v,k=v`` and a list ``a,b``;
- EXEC prints one line per queued command, its result as a list item or its error
  as ``(error) CODE message``;
- a published message prints ``channel<TAB>payload``, the payload as a list item;
- ``--json`` prints the reply as one line of tagged JSON
  (:mod:`kv_protocol.records.tagged`, the AOF's format): plain JSON whenever JSON
  can hold the value exactly, and ``{"$bytes": base64}``, ``{"$int": hex}``,
  ``{"$float": "inf"}`` or ``{"$map": [[k, v], ...]}`` where it cannot.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import Final

from kv_protocol.commands import COMMANDS, CommandSpec
from kv_protocol.errors import KvError, ServerError
from kv_protocol.messages import decode_message
from kv_protocol.records import tagged

from ._pubsub import Message

SYNTAX_COLUMN: Final = 40
"""Width of the syntax column of ``--commands``; longer syntaxes (SET's options) put
their summary on the next line rather than push every summary to the right."""
HELP_WIDTH: Final = 78
"""Where the REPL's ``help COMMAND`` wraps a command's notes: a classic terminal."""
_FIELD_BREAKS: Final = frozenset("\t\n\r")
"""Characters that would split an item across lines or fields."""


def scalar_text(value: object) -> str:
    """The plain form of a scalar reply (see the module docstring)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, bytes):
        return bytes_text(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bytes_text(data: bytes) -> str:
    """``data`` as text: UTF-8 when valid, else with ``\\xNN`` escapes and doubled backslashes.

    Doubling the backslashes keeps the escapes unambiguous: the bytes ``\\x41`` (four
    characters) and the byte 0x41 preceded by an invalid byte print differently.
    Backslash is ASCII, so doubling it never touches a multi-byte sequence.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def item_text(value: object) -> str:
    """One list item, map key or map value, always on one line and without tabs."""
    if isinstance(value, list | dict):
        return tagged.dumps(value)
    text = scalar_text(value)
    if _FIELD_BREAKS.isdisjoint(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def plain_lines(reply: object) -> list[str]:
    """The lines that print ``reply`` (a top-level scalar keeps its line breaks)."""
    if isinstance(reply, list):
        return [item_text(item) for item in reply]
    if isinstance(reply, dict):
        return [f"{item_text(key)}\t{item_text(value)}" for key, value in reply.items()]
    return [scalar_text(reply)]


def info_lines(sections: Mapping[object, object]) -> list[str]:
    """INFO's map of sections in Redis's text layout."""
    lines: list[str] = []
    for name, fields in sections.items():
        if lines:
            lines.append("")
        lines.append(f"# {scalar_text(name).capitalize()}")
        if isinstance(fields, dict):
            lines += [f"{scalar_text(key)}:{_info_value(value)}" for key, value in fields.items()]
    return lines


def _info_value(value: object) -> str:
    # Redis writes compound INFO fields (cmdstat_get, db0) as k=v,k=v.
    if isinstance(value, dict):
        return ",".join(f"{scalar_text(k)}={_info_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(_info_value(item) for item in value)
    return scalar_text(value)


def reply_lines(reply: object, command: str | None, *, as_json: bool) -> list[str]:
    """The lines to print for ``reply`` to ``command`` (a table name, or None if unknown)."""
    if as_json:
        return [tagged.dumps(reply)]
    if command == "INFO" and isinstance(reply, dict):
        return info_lines(reply)
    if command == "EXEC" and isinstance(reply, list):
        return exec_lines(reply)
    return plain_lines(reply)


def exec_lines(envelopes: list[object]) -> list[str]:
    """EXEC's answer, one line per queued command: its value as a list item, or its
    error as ``(error) CODE message``."""
    lines = []
    for envelope in envelopes:
        _, value = decode_message(envelope)
        lines.append(error_text(value) if isinstance(value, KvError) else item_text(value))
    return lines


def message_line(message: Message, *, as_json: bool) -> str:
    """One published message: ``channel<TAB>payload``, or an object of tagged JSON."""
    if not as_json:
        return f"{item_text(message.channel)}\t{item_text(message.data)}"
    fields = {"kind": message.kind, "channel": message.channel, "data": message.data}
    if message.pattern is not None:
        fields["pattern"] = message.pattern
    return tagged.dumps(fields)


def error_text(exc: KvError) -> str:
    """The STDERR line for a failed command: redis-cli's ``(error) CODE message`` for
    error replies, ``kv: message`` for everything else (connection, timeout, protocol)."""
    if isinstance(exc, ServerError):
        return f"(error) {exc.code} {exc.message}"
    return f"kv: {exc}"


def commands_text() -> str:
    """``kv --commands``: every command in the table, by family, with its syntax and summary."""
    groups: dict[str, list[CommandSpec]] = {}
    for spec in COMMANDS:
        groups.setdefault(spec.group, []).append(spec)
    lines: list[str] = []
    for group, specs in groups.items():
        if lines:
            lines.append("")
        lines.append(group.capitalize())
        for spec in specs:
            if len(spec.syntax) > SYNTAX_COLUMN:
                lines += [f"  {spec.syntax}", f"  {'':{SYNTAX_COLUMN}}  {spec.summary}"]
            else:
                lines.append(f"  {spec.syntax:{SYNTAX_COLUMN}}  {spec.summary}")
    return "\n".join(lines)


def command_help(spec: CommandSpec) -> list[str]:
    """The REPL's ``help COMMAND``: syntax, summary and the table's notes."""
    lines = [spec.syntax, f"  {spec.summary}", f"  group: {spec.group}, since {spec.since}"]
    if spec.notes:
        lines += textwrap.wrap(spec.notes, HELP_WIDTH, initial_indent="  ", subsequent_indent="  ")
    return lines
