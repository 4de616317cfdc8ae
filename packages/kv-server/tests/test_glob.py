"""The glob matcher against Redis's own algorithm, transcribed as an oracle."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_server._glob import compile_glob


def redis_match(pattern: str, string: str) -> bool:
    """Redis's stringmatchlen (util.c), transcribed literally; exponential, for tests only."""
    p, s = 0, 0
    while p < len(pattern) and s <= len(string):
        c = pattern[p]
        if c == "*":
            while p + 1 < len(pattern) and pattern[p + 1] == "*":
                p += 1
            if p + 1 == len(pattern):
                return True
            return any(redis_match(pattern[p + 1 :], string[i:]) for i in range(s, len(string) + 1))
        if s == len(string):
            return False
        if c == "?":
            s += 1
        elif c == "[":
            p += 1
            negate = p < len(pattern) and pattern[p] == "^"
            if negate:
                p += 1
            matched = False
            while True:
                if p < len(pattern) and pattern[p] == "\\" and p + 1 < len(pattern):
                    p += 1
                    matched |= pattern[p] == string[s]
                elif p < len(pattern) and pattern[p] == "]":
                    break
                elif p >= len(pattern):
                    p -= 1
                    break
                elif p + 2 < len(pattern) and pattern[p + 1] == "-":
                    low, high = sorted((pattern[p], pattern[p + 2]))
                    p += 2
                    matched |= low <= string[s] <= high
                else:
                    matched |= pattern[p] == string[s]
                p += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            s += 1
        else:
            if c == "\\" and p + 1 < len(pattern):
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern) and s == len(string)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("*", "", True), ("h?llo", "hello", True), ("h?llo", "hllo", False),
        ("h*llo", "heeeello", True), ("h[ae]llo", "hallo", True), ("h[ae]llo", "hillo", False),
        ("h[^e]llo", "hallo", True), ("h[^e]llo", "hello", False), ("h[a-b]llo", "hbllo", True),
        ("h[b-a]llo", "hallo", True), ("h\\*llo", "h*llo", True), ("h\\*llo", "hello", False),
        ("[]", "a", False), ("[^]", "a", True), ("a[bc", "ab", True), ("a\\", "a\\", True),
        ("*.txt", "notes.txt", True), ("a*b*c", "aXbYc", True), ("a*b*c", "aXcYb", False),
        ("line*", "line\nbreak", True),
    ],
)
def test_redis_semantics(pattern: str, key: str, expected: bool) -> None:
    assert compile_glob(pattern)(key) is expected
    assert redis_match(pattern, key) is expected


alphabet = st.sampled_from("ab*?[]^-\\")


@given(st.text(alphabet, max_size=8), st.text(st.sampled_from("ab*?[]^-\\c"), max_size=8))
def test_agrees_with_redis(pattern: str, key: str) -> None:
    assert compile_glob(pattern)(key) is redis_match(pattern, key)


@given(st.text(alphabet, max_size=8), st.binary(max_size=8))
def test_bytes_keys_match_byte_by_byte(pattern: str, key: bytes) -> None:
    expected = redis_match(pattern, key.decode("latin-1"))
    assert compile_glob(pattern.encode())(key) is expected
    assert compile_glob(pattern)(key) is expected


def test_pathological_patterns_do_not_backtrack() -> None:
    # With a backtracking translation this takes longer than the test timeout.
    matches = compile_glob("a*" * 40 + "b")
    assert not matches("a" * 5000)
    assert matches("a" * 5000 + "b")


def test_unicode_patterns_match_text_and_utf8_bytes() -> None:
    matches = compile_glob("é?")
    assert matches("éx")
    assert matches("é".encode() + b"x")
    assert not matches("ex")
