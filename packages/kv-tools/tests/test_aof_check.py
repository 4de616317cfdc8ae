"""kv-aof-check on files built with the server's codec: clean, torn, flipped, garbage, empty.

Each damaged file is checked twice: the report (exit 1, the right line and offset)
and ``--fix --yes``, after which the file must hold exactly the records before the
damage and the backup must equal the original.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kv_protocol.records.aof import AofReader, encode_header, encode_record
from kv_tools import _aof_check
from kv_tools._aof_check import main

RECORDS = [encode_record(1_700_000_000_000 + i, ["SET", f"key:{i}", "v" * (i % 7), i]) for i in range(20)]
HEADER = encode_header(1000)
CLEAN = HEADER + b"".join(RECORDS)


def _offset(line: int) -> int:
    """Byte offset of a 1-based line of CLEAN (line 1 is the header)."""
    return len(HEADER) + sum(len(record) for record in RECORDS[: line - 2])


def _records_in(data: bytes) -> int:
    reader = AofReader()
    count = len(reader.feed(data))
    end = reader.finish(allow_torn=False)
    assert end.records == count
    return count


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


class _Terminal(io.StringIO):
    """stdin as a terminal that types ``text``."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def aof(tmp_path: Path) -> Path:
    path = tmp_path / "kv.aof"
    path.write_bytes(CLEAN)
    return path


def test_a_clean_file_is_ok(aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, aof)
    assert code == 0 and err == ""
    assert out.splitlines() == [f"{aof}: 20 records, start position 1000, {len(CLEAN):,} bytes", "OK"]


def test_fix_on_a_clean_file_changes_nothing(aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--fix", "--yes", aof)
    assert code == 0 and out.splitlines()[-1] == "nothing to fix"
    assert aof.read_bytes() == CLEAN and not aof.with_name("kv.aof.bak").exists()


def test_every_cut_inside_the_last_record_is_a_torn_tail_and_fix_keeps_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = _offset(21)
    for cut in range(last + 1, len(CLEAN)):
        path = tmp_path / f"cut{cut}" / "kv.aof"
        path.parent.mkdir()
        path.write_bytes(CLEAN[:cut])
        code, out, _ = _run(capsys, path)
        assert code == 1
        assert f"first bad record: line 21, byte offset {last}: torn last record" in out
        assert "never acknowledged" in out
        assert f"--fix would keep 19 records (bytes 0..{last}) and drop {cut - last:,} bytes (line 21)" in out
        code, out, _ = _run(capsys, "--fix", "--yes", path)
        assert code == 0 and f"truncated {path} to {last} bytes" in out
        assert path.read_bytes() == CLEAN[:last] and _records_in(path.read_bytes()) == 19
        assert path.with_name("kv.aof.bak").read_bytes() == CLEAN[:cut]
        assert _run(capsys, path)[0] == 0


def test_a_cut_on_a_line_boundary_is_a_clean_shorter_file(
        aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aof.write_bytes(CLEAN[: _offset(21)])
    code, out, _ = _run(capsys, aof)
    assert code == 0 and "19 records" in out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(_offset(2), len(CLEAN) - 1), bit=st.integers(0, 7))
def test_a_flipped_bit_is_found_on_its_line_and_fix_keeps_the_records_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], position: int, bit: int) -> None:
    damaged = bytearray(CLEAN)
    damaged[position] ^= 1 << bit
    # Whatever the bit does, the line holding it is the first bad one: CRC32C catches
    # every single-bit error; a new newline leaves a first half that does not verify;
    # a lost newline merges the line with the next (or leaves a torn tail).
    line = CLEAN.count(b"\n", 0, position) + 1
    directory = tmp_path / f"flip{position}-{bit}"
    directory.mkdir()
    path = directory / "kv.aof"
    path.write_bytes(bytes(damaged))
    code, out, _ = _run(capsys, path)
    assert code == 1
    offset = _offset(line)
    assert f"first bad record: line {line}, byte offset {offset}:" in out
    assert f"--fix would keep {line - 2} records (bytes 0..{offset})" in out
    code, out, _ = _run(capsys, "--fix", "--yes", path)
    assert code == 0
    assert path.read_bytes() == CLEAN[:offset] and _records_in(CLEAN[:offset]) == line - 2
    assert path.with_name("kv.aof.bak").read_bytes() == bytes(damaged)


@pytest.mark.parametrize("garbage", [b"garbage\n", b"\0\0\0\0\n", b"12 deadbeef [\"SET\"\n", b"\n"])
def test_a_garbage_line_in_the_middle(aof: Path, capsys: pytest.CaptureFixture[str], garbage: bytes) -> None:
    offset = _offset(8)
    aof.write_bytes(CLEAN[:offset] + garbage + CLEAN[offset:])
    total_lines = 22
    code, out, _ = _run(capsys, aof)
    assert code == 1
    assert f"first bad record: line 8, byte offset {offset}:" in out
    dropped = len(CLEAN) + len(garbage) - offset
    assert (f"--fix would keep 6 records (bytes 0..{offset}) and drop {dropped:,} bytes "
            f"(lines 8..{total_lines})") in out
    assert "lines that still verify as records on their own: 14; lines that do not: 1." in out
    assert main(["--fix", "--yes", str(aof)]) == 0
    assert aof.read_bytes() == CLEAN[:offset]


@pytest.mark.parametrize("chunk_bytes", [3, 64, 1 << 20])
def test_lines_after_the_first_bad_one_are_checked_on_their_own(
        aof: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        chunk_bytes: int) -> None:
    """The report warns that --fix would drop records that still verify (the backup has them)."""
    monkeypatch.setattr(_aof_check, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(_aof_check, "MAX_LINE_BYTES", 80)  # the scan skips longer lines as garbage
    damaged = CLEAN[: _offset(5)] + b"bad\n" + CLEAN[_offset(5): _offset(9)] + b"y" * 100 + b"\n"
    aof.write_bytes(damaged + b"\n".join([b"junk"] * 5) + CLEAN[_offset(9):] + b"torn")
    code, out, _ = _run(capsys, aof)
    assert code == 1 and "first bad record: line 5," in out
    # Bad: line 5, the long line, four junk lines, the fifth merged with a record.
    assert "lines that still verify as records on their own: 16; lines that do not: 7." in out
    assert f"(lines 5..{1 + 20 + 7})" in out


def test_a_garbage_region_stops_the_per_line_check(aof: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_aof_check, "SALVAGE_MAX_BAD_LINES", 3)
    offset = _offset(3)
    aof.write_bytes(CLEAN[:offset] + b"x\n" + RECORDS[1] + b"x\n" * 10 + CLEAN[offset:])
    code, out, _ = _run(capsys, aof)
    assert code == 1 and "first bad record: line 3," in out
    assert ("lines that still verify as records on their own: 1; lines that do not: at least 3; "
            "the check stopped after 3 bad lines, so later records were not counted.") in out
    assert "(lines 3..33)" in out


def test_a_garbage_region_first_still_says_the_count_stopped(
        aof: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_aof_check, "SALVAGE_MAX_BAD_LINES", 3)
    offset = _offset(3)
    aof.write_bytes(CLEAN[:offset] + b"x\n" * 10 + CLEAN[offset:])
    code, out, _ = _run(capsys, aof)
    assert code == 1 and "so later records were not counted" in out


def test_garbage_after_the_last_record_without_a_newline_is_a_torn_tail(
        aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aof.write_bytes(CLEAN + b"\0" * 100)
    code, out, _ = _run(capsys, aof)
    assert code == 1 and "all NUL" in out and "20 records" in out


def test_an_empty_file_cannot_be_fixed(aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aof.write_bytes(b"")
    for args in ((aof,), ("--fix", "--yes", aof)):
        code, out, _ = _run(capsys, *args)
        assert code == 1
        assert "empty file (no header)" in out and "treats an empty append-only file as absent" in out
    assert aof.read_bytes() == b"" and not aof.with_name("kv.aof.bak").exists()


@pytest.mark.parametrize("content", [b"not an aof\n" + CLEAN, b"kv-aof 1", b"kv-aof 9 0\n"])
def test_a_bad_header_cannot_be_fixed_by_truncation(
        aof: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    aof.write_bytes(content)
    code, out, _ = _run(capsys, "--fix", "--yes", aof)
    assert code == 1
    assert "first bad record: line 1, byte offset 0:" in out and "--fix cannot repair this file" in out
    assert aof.read_bytes() == content and not aof.with_name("kv.aof.bak").exists()


def test_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, tmp_path / "kv.aof")
    assert code == 2 and out == "" and "kv.aof: cannot read: No such file or directory" in err


def test_a_directory_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, tmp_path)
    assert code == 2 and "not a regular file" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_exit_2(aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aof.chmod(0)
    code, _, err = _run(capsys, aof)
    assert code == 2 and "Permission denied" in err


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_help_names_the_options_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for word in ("--fix", "--yes", "FILE.bak", "exit status", "kv.aof.N", "torn"):
        assert word in out


def _damage(aof: Path) -> bytes:
    damaged = CLEAN[: _offset(10)] + b"x" + CLEAN[_offset(10) + 1:]
    aof.write_bytes(damaged)
    return damaged


def test_a_declined_prompt_keeps_the_file(aof: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = _damage(aof)
    for answer in ("n\n", "\n", ""):
        monkeypatch.setattr("sys.stdin", _Terminal(answer))
        code, out, err = _run(capsys, "--fix", aof)
        assert code == 1 and "not fixed: the file is unchanged" in out and "[y/N]" in err
        assert aof.read_bytes() == damaged and not aof.with_name("kv.aof.bak").exists()


def test_an_accepted_prompt_fixes(aof: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = _damage(aof)
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, _ = _run(capsys, "--fix", aof)
    assert code == 0 and "backup: " in out and aof.read_bytes() == CLEAN[: _offset(10)]
    assert aof.with_name("kv.aof.bak").read_bytes() == damaged


def test_fix_without_a_terminal_needs_yes(aof: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = _damage(aof)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, _, err = _run(capsys, "--fix", aof)
    assert code == 2 and "pass --yes" in err and aof.read_bytes() == damaged


def test_backups_never_overwrite_older_ones(aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aof.with_name("kv.aof.bak").write_bytes(b"older")
    aof.with_name("kv.aof.bak.1").write_bytes(b"older still")
    damaged = _damage(aof)
    code, out, _ = _run(capsys, "--fix", "--yes", aof)
    assert code == 0 and "kv.aof.bak.2" in out
    assert aof.with_name("kv.aof.bak.2").read_bytes() == damaged
    assert aof.with_name("kv.aof.bak").read_bytes() == b"older"


def test_fix_refuses_while_a_server_holds_the_directory(
        aof: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    damaged = _damage(aof)
    lock = aof.with_name("kv.lock")
    lock.write_text("4242\n")
    with open(lock, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = _run(capsys, "--fix", "--yes", aof)
    assert code == 2 and "in use by a running kv-server (pid 4242)" in err
    assert aof.read_bytes() == damaged
    assert main(["--fix", "--yes", str(aof)]) == 0  # the lock is free again


def test_fix_through_a_symlink_honours_the_real_directorys_lock(
        aof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    damaged = _damage(aof)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "link.aof"
    link.symlink_to(aof)
    with open(aof.with_name("kv.lock"), "wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = _run(capsys, "--fix", "--yes", link)
    assert code == 2 and "in use by a running kv-server" in err
    assert aof.read_bytes() == damaged


def test_fix_refuses_a_file_that_changed_after_the_check(aof: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = _damage(aof)
    check = _aof_check.check_file(aof)
    with aof.open("ab") as out:
        out.write(RECORDS[0])
    with pytest.raises(_aof_check.CheckError, match="changed since it was checked"):
        _aof_check.fix(check)
    assert aof.read_bytes() == damaged + RECORDS[0]


def test_an_older_segment_is_checked_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    segment = tmp_path / "kv.aof.3"
    segment.write_bytes(CLEAN[:-1])
    code, out, _ = _run(capsys, "--fix", "--yes", segment)
    assert code == 0 and "kv.aof.3.bak" in out and segment.read_bytes() == CLEAN[: _offset(21)]
    assert (tmp_path / "kv.aof.3.bak").read_bytes() == CLEAN[:-1]


def test_the_file_is_read_in_chunks(aof: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is bounded by the chunk: a 5-byte chunk still finds the same damage."""
    monkeypatch.setattr(_aof_check, "CHUNK_BYTES", 5)
    _damage(aof)
    code, out, _ = _run(capsys, aof)
    assert code == 1 and f"line 10, byte offset {_offset(10)}" in out and "8 records" in out


def test_the_progress_bar_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from kv_tools._progress import PROGRESS_MIN_BYTES, byte_progress

    for stream, size, shown in ((io.StringIO(), PROGRESS_MIN_BYTES, False),
                                (_Terminal(), PROGRESS_MIN_BYTES - 1, False),
                                (_Terminal(), PROGRESS_MIN_BYTES, True)):
        monkeypatch.setattr("sys.stderr", stream)
        with byte_progress(size, "kv.aof") as advance:
            advance(size // 2)
            advance(size - size // 2)
        assert ("kv.aof:" in stream.getvalue()) is shown, stream.getvalue()
