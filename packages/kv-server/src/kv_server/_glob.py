"""Redis-style glob patterns, compiled to regular expressions that never backtrack.

Syntax, as Redis's ``stringmatchlen``: ``*`` any run, ``?`` one character, ``[abc]``,
``[^abc]``, ``[a-z]`` (reversed ranges are swapped), ``\\x`` a literal x. An empty
class ``[]`` matches nothing; an unclosed class runs to the end of the pattern.

Why not ``fnmatch``: its classes use ``!`` and it has no escapes. Why not a plain
translation to ``.*``: a pattern such as ``a*a*a*a*b`` then backtracks
exponentially (Redis itself needed a fix for this, CVE-2022-36021). Here the parts
between stars have fixed lengths, so matching each middle part at its leftmost
position is optimal; an atomic group ``(?>.*?part)`` commits to that position and
the regex engine never returns to it.

Text and bytes keys are distinct keys, and a pattern matches both kinds: bytes keys
against the pattern's UTF-8 form, text keys against its text form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from kv_protocol.values import Key


def _translate(pattern: str) -> list[str | None]:
    """Regex fragments for each pattern element; None stands for ``*``.

    Bytes patterns arrive decoded as Latin-1, one character per byte, so one
    translation serves both; the bytes regex is encoded back the same way.
    """
    out: list[str | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if not out or out[-1] is not None:
                out.append(None)
        elif c == "?":
            out.append(".")
        elif c == "[":
            i, fragment = _translate_class(pattern, i + 1)
            out.append(fragment)
        else:
            if c == "\\" and i + 1 < n:
                i += 1
            out.append(re.escape(pattern[i]))
        i += 1
    return out


def _translate_class(pattern: str, i: int) -> tuple[int, str]:
    """Translate a class starting after ``[``; returns the index of its ``]``."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    parts: list[str] = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            i += 1
            parts.append(re.escape(pattern[i]))
        elif i + 2 < n and pattern[i + 1] == "-":
            low, high = sorted((pattern[i], pattern[i + 2]))
            parts.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 2
        else:
            parts.append(re.escape(pattern[i]))
        i += 1
    if not parts:
        return i, "(?s:.)" if negate else "(?!)"
    return i, f"[{'^' if negate else ''}{''.join(parts)}]"


def _source(pattern: str) -> str:
    fragments = _translate(pattern)
    if None not in fragments:
        return "".join(f for f in fragments if f is not None)
    segments: list[str] = [""]
    for fragment in fragments:
        if fragment is None:
            segments.append("")
        else:
            segments[-1] += fragment
    first, *middle, last = segments
    body = "".join(f"(?>.*?{segment})" for segment in middle if segment)
    return f"{first}{body}.*{last}"


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str | bytes) -> Callable[[Key], bool]:
    """A predicate telling whether a key (text or bytes) matches ``pattern``."""
    if pattern in ("*", b"*"):
        return lambda key: True
    raw_pattern = pattern.encode("utf-8") if isinstance(pattern, str) else pattern
    text_pattern = pattern if isinstance(pattern, str) else pattern.decode("utf-8", "surrogateescape")
    text = re.compile(_source(text_pattern), re.DOTALL)
    raw = re.compile(_source(raw_pattern.decode("latin-1")).encode("latin-1"), re.DOTALL)

    def matches(key: Key) -> bool:
        if isinstance(key, str):
            return text.fullmatch(key) is not None
        return raw.fullmatch(key) is not None

    return matches
