"""The command table: lists, kv's queues (a deque: O(1) at both ends)."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Option, Reply, choice, integer, key, options, value

_RO = Flag.READONLY
_W = Flag.WRITE
_WM = _W | Flag.DENYOOM  # may grow memory: checked against --maxmemory

_PUSH_NOTES: Final = ("Answers the list's new length. Elements are pushed one after the "
                      "other, so `LPUSH k a b c` leaves `c b a`, as in Redis.")
_POP_NOTES: Final = ("Without count: the element, or null if the key is missing. With "
                     "count: a list of up to count elements, or null if the key is missing; "
                     "a negative count answers OUTOFRANGE. A list left empty is deleted.")
_MOVE_NOTES: Final = ("Answers the element, or null (and does nothing) when the source is "
                      "missing. With the same key as source and destination the list rotates. "
                      "A destination that is not a list answers WRONGTYPE and nothing moves.")
_BLOCKING: Final = ("timeout is in seconds (a float is allowed; 0 waits for ever). Clients "
                     "blocked on a key are served in the order they blocked, one element each, "
                     "when a push, a transaction, RENAME or a move from another list gives it "
                     "elements. The element served is logged to the AOF as the non-blocking "
                     "pop. Answers null when the timeout passes. Inside MULTI it does not "
                     "wait: it answers at once, as the non-blocking command would.")
_BW = _W | Flag.BLOCKING
_BWM = _BW | Flag.DENYOOM
_EQUALITY: Final = ("Elements match when they have the same type and value: the integer 1 "
                    "does not match the float 1.0, the text `1` or true.")

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("LPUSH", "list", "Push elements onto the head of a list.",
                (key(), Arg("element", multiple=True)), _WM, Reply.INTEGER, notes=_PUSH_NOTES),
    CommandSpec("RPUSH", "list", "Push elements onto the tail of a list.",
                (key(), Arg("element", multiple=True)), _WM, Reply.INTEGER, notes=_PUSH_NOTES),
    CommandSpec("LPUSHX", "list", "Push onto the head of a list only if it exists.",
                (key(), Arg("element", multiple=True)), _WM, Reply.INTEGER,
                notes="Answers the new length, or 0 (pushing nothing) when the key is missing."),
    CommandSpec("RPUSHX", "list", "Push onto the tail of a list only if it exists.",
                (key(), Arg("element", multiple=True)), _WM, Reply.INTEGER,
                notes="Answers the new length, or 0 (pushing nothing) when the key is missing."),
    CommandSpec("LPOP", "list", "Remove and return elements from the head of a list.",
                (key(), integer("count", optional=True)), _W, Reply.VALUE, notes=_POP_NOTES),
    CommandSpec("RPOP", "list", "Remove and return elements from the tail of a list.",
                (key(), integer("count", optional=True)), _W, Reply.VALUE, notes=_POP_NOTES),
    CommandSpec("LLEN", "list", "The length of a list.", (key(),), _RO, Reply.INTEGER,
                notes="0 for a missing key."),
    CommandSpec("LINDEX", "list", "The element at an index, or null.",
                (key(), integer("index")), _RO, Reply.VALUE,
                notes="Negative indices count from the tail (-1 is the last element)."),
    CommandSpec("LRANGE", "list", "The elements between two indices, both included.",
                (key(), integer("start"), integer("stop")), _RO, Reply.LIST,
                notes="Negative indices count from the tail; out-of-range indices are "
                      "clamped, as in Redis."),
    CommandSpec("LSET", "list", "Replace the element at an index.",
                (key(), integer("index"), value("element")), _WM, Reply.STATUS,
                notes="NOKEY when the key is missing, OUTOFRANGE when the index is."),
    CommandSpec("LREM", "list", "Remove elements equal to a value.",
                (key(), integer("count"), value("element")), _W, Reply.INTEGER,
                notes="count > 0 removes the first count matches from the head, count < 0 "
                      "from the tail, 0 all of them. Answers how many were removed. "
                      + _EQUALITY),
    CommandSpec("LTRIM", "list", "Keep only the elements between two indices.",
                (key(), integer("start"), integer("stop")), _W, Reply.STATUS,
                notes="Indices as LRANGE's; a list left empty is deleted."),
    CommandSpec("LINSERT", "list", "Insert an element before or after another.",
                (key(), choice("where", "BEFORE", "AFTER"), value("pivot"), value("element")),
                _WM, Reply.INTEGER,
                notes="Answers the new length, -1 when the pivot is not found, 0 when the key "
                      "is missing. " + _EQUALITY),
    CommandSpec("LPOS", "list", "The index of matching elements.",
                (key(), value("element"), options(Option("RANK", integer("rank")),
                                                  Option("COUNT", integer("num-matches")),
                                                  Option("MAXLEN", integer("len")))),
                _RO, Reply.VALUE,
                notes="As Redis: RANK n starts from the n-th match (negative: from the tail), "
                      "COUNT n answers a list of up to n indices (0: all), MAXLEN n looks at "
                      "n elements at most (0: all). " + _EQUALITY),
    CommandSpec("LMOVE", "list", "Pop an element from one list and push it onto another.",
                (key("source"), key("destination"), choice("wherefrom", "LEFT", "RIGHT"),
                 choice("whereto", "LEFT", "RIGHT")), _WM, Reply.VALUE, notes=_MOVE_NOTES),
    CommandSpec("RPOPLPUSH", "list", "Pop from a list's tail, push onto another's head.",
                (key("source"), key("destination")), _WM, Reply.VALUE, notes=_MOVE_NOTES),
    CommandSpec("BLPOP", "list", "Pop from the head of the first non-empty list, or wait.",
                (key(multiple=True), Arg("timeout", ArgKind.NUMBER)), _BW, Reply.VALUE,
                notes="Answers `[key, element]`. The keys are tried in order. " + _BLOCKING),
    CommandSpec("BRPOP", "list", "Pop from the tail of the first non-empty list, or wait.",
                (key(multiple=True), Arg("timeout", ArgKind.NUMBER)), _BW, Reply.VALUE,
                notes="Answers `[key, element]`. The keys are tried in order. " + _BLOCKING),
    CommandSpec("BLMOVE", "list", "LMOVE, waiting for the source to have an element.",
                (key("source"), key("destination"), choice("wherefrom", "LEFT", "RIGHT"),
                 choice("whereto", "LEFT", "RIGHT"), Arg("timeout", ArgKind.NUMBER)),
                _BWM, Reply.VALUE, notes="Answers the element moved. " + _BLOCKING),
    CommandSpec("BRPOPLPUSH", "list", "RPOPLPUSH, waiting for the source to have an element.",
                (key("source"), key("destination"), Arg("timeout", ArgKind.NUMBER)), _BWM,
                Reply.VALUE, notes="Answers the element moved. " + _BLOCKING),
    CommandSpec("BLPOPRPUSH", "list", "LPOPRPUSH, waiting for the source to have an element.",
                (key("source"), key("destination"), Arg("timeout", ArgKind.NUMBER)), _BWM,
                Reply.VALUE,
                notes="The blocking form of kv's queue hand-off: a worker takes the oldest "
                      "job and parks it in its in-progress list in one step. Answers the "
                      "element moved. " + _BLOCKING),
    CommandSpec("LPOPRPUSH", "list", "Pop from a list's head, push onto another's tail.",
                (key("source"), key("destination")), _WM, Reply.VALUE,
                notes="From kv's original system (Redis lacks it): `LMOVE source destination "
                      "LEFT RIGHT`, the queue's hand-off. " + _MOVE_NOTES),
)
