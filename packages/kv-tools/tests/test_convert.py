"""kv-convert on snapshots made with the server's codec: round trips, refusals, damage, inspection.

``--from-aof`` runs kv-server (a subprocess on a copy of the directory); its error
paths are tested here on directories built with the AOF codec, its success against
a real server's files in tests-integration/test_convert.py.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kv_protocol.records.aof import encode_header, encode_record
from kv_protocol.records.snapshot import SnapshotEntry, SnapshotReader, SnapshotWriter
from kv_tools import _convert
from kv_tools._convert import main
from protocol_helpers import keys, map_keys, same, scalars

Capture = pytest.CaptureFixture[str]
ENTRIES = [
    SnapshotEntry("s", "string", "text", None),
    SnapshotEntry(b"\xff\x00", "string", b"\x00\x01", 1_800_000_000_000),
    SnapshotEntry("big", "string", -(2**90), None),
    SnapshotEntry("nan", "string", math.nan, None),
    SnapshotEntry("l", "list", [1, math.inf, None, [True, {1: b"x"}]], None),
    SnapshotEntry("h", "hash", {"f": 1.5, b"g": {None: "n", 2: -math.inf}}, 1_900_000_000_000),
]

values = st.recursive(
    scalars | st.floats(),  # with NaN and both infinities
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(map_keys, inner, max_size=4),
    max_leaves=10,
)
entries = st.lists(
    st.tuples(keys, st.sampled_from(["string", "list", "hash"]), values,
              st.none() | st.integers(0, 2**62)),
    max_size=12,
).map(lambda items: [_entry(*item) for item in items])


def _entry(key: object, kind: str, value: object, deadline: int | None) -> SnapshotEntry:
    """Shape a drawn value to its kind: a list for a list key, a map of text/bytes fields for a hash."""
    if kind == "list":
        value = value if isinstance(value, list) else [value]
    elif kind == "hash":
        fields = value.items() if isinstance(value, dict) else []
        value = {k: v for k, v in fields if isinstance(k, str | bytes)}
    return SnapshotEntry(key, kind, value, deadline)  # type: ignore[arg-type]


def snapshot_bytes(items: Iterable[SnapshotEntry], encoding: str = "plaintext", *,
                   aof_position: int = 42, created_ms: int = 1_700_000_000_000) -> bytes:
    items = list(items)
    writer = SnapshotWriter(encoding, len(items), aof_position, created_ms)
    return writer.header() + writer.entries(items) + writer.trailer()


def read_back(path: Path) -> tuple[str, int, int, list[SnapshotEntry]]:
    reader = SnapshotReader()
    found = reader.feed(path.read_bytes())
    header = reader.finish()
    return header.encoding, header.aof_position, header.created_ms, found


def run(capsys: Capture, *args: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=entries)
def test_plaintext_to_binary_and_back_keeps_every_entry(items: list[SnapshotEntry]) -> None:
    with tempfile.TemporaryDirectory() as work:
        plain, binary, again = Path(work, "in.db"), Path(work, "out.bin"), Path(work, "again.db")
        plain.write_bytes(snapshot_bytes(items))
        assert main([str(plain), str(binary)]) == 0
        encoding, position, created, found = read_back(binary)
        assert (encoding, position, created) == ("binary", 42, 1_700_000_000_000)
        assert same([list(e) for e in found], [list(e) for e in items])
        assert main([str(binary), str(again), "--to", "plaintext"]) == 0
        assert again.read_bytes() == plain.read_bytes()  # both encodings are deterministic
        assert not Path(work, "out.bin.tmp").exists()


def test_to_the_same_encoding_rewrites_and_verifies(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(snapshot_bytes(ENTRIES, "binary"))
    assert main([str(source), str(tmp_path / "out.bin"), "--to", "binary"]) == 0
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_an_existing_out_is_replaced_only_with_force(tmp_path: Path, capsys: Capture) -> None:
    source, target = tmp_path / "in.db", tmp_path / "out.bin"
    source.write_bytes(snapshot_bytes(ENTRIES))
    target.write_bytes(b"keep me")
    status, _, err = run(capsys, source, target)
    assert status == 2 and "already exists; pass --force" in err and str(target) in err
    assert target.read_bytes() == b"keep me"
    assert run(capsys, source, target, "--force")[0] == 0
    assert same([list(e) for e in read_back(target)[3]], [list(e) for e in ENTRIES])


def test_files_beside_out_are_never_touched(tmp_path: Path, capsys: Capture) -> None:
    """A leftover ``OUT.tmp`` may be the input being recovered, or a link elsewhere."""
    source, target = tmp_path / "kv.db.tmp", tmp_path / "kv.db"
    source.write_bytes(snapshot_bytes(ENTRIES))
    original = source.read_bytes()
    assert run(capsys, source, target)[0] == 0
    assert source.read_bytes() == original and len(read_back(target)[3]) == len(ENTRIES)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (tmp_path / "out.db.tmp").symlink_to(victim)
    assert run(capsys, source, tmp_path / "out.db")[0] == 0
    assert victim.read_bytes() == b"precious" and not (tmp_path / "out.db").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_dangling_symlink_at_out_needs_force(tmp_path: Path, capsys: Capture) -> None:
    source, target = tmp_path / "in.db", tmp_path / "out.db"
    source.write_bytes(snapshot_bytes(ENTRIES))
    target.symlink_to(tmp_path / "nowhere")
    status, _, err = run(capsys, source, target)
    assert status == 2 and "already exists" in err and target.is_symlink()


@pytest.mark.parametrize("same_file", ["path", "relative", "hard link"])
def test_out_may_not_be_in_even_with_force(tmp_path: Path, capsys: Capture,
                                           monkeypatch: pytest.MonkeyPatch, same_file: str) -> None:
    source = tmp_path / "in.db"
    original = snapshot_bytes(ENTRIES)
    source.write_bytes(original)
    monkeypatch.chdir(tmp_path)
    target = {"path": source, "relative": Path("in.db"), "hard link": tmp_path / "link.db"}[same_file]
    if same_file == "hard link":
        os.link(source, target)
    status, _, err = run(capsys, source, target, "--force")
    assert status == 2 and "OUT is IN" in err
    assert source.read_bytes() == original


def _damaged() -> list[tuple[str, bytes, str]]:
    plain, binary = snapshot_bytes(ENTRIES), snapshot_bytes(ENTRIES, "binary")
    flipped = bytearray(plain)
    flipped[plain.index(b'"text"') + 1] ^= 0x01  # still valid JSON: only the checksum can tell
    return [
        ("truncated plaintext", plain[:-10], "truncated"),
        ("truncated binary", binary[: len(binary) // 2], "truncated"),
        ("a flipped byte", bytes(flipped), "checksum mismatch"),
        ("garbage", b"hello world\n", "not a kv snapshot"),
        ("empty", b"", "the file is empty"),
    ]


@pytest.mark.parametrize(("data", "reason"), [d[1:] for d in _damaged()], ids=[d[0] for d in _damaged()])
def test_damaged_input_exits_1_and_creates_no_output(tmp_path: Path, capsys: Capture,
                                                     data: bytes, reason: str) -> None:
    source, target = tmp_path / "in.db", tmp_path / "out.db"
    source.write_bytes(data)
    status, out, err = run(capsys, source, target)
    assert status == 1, err
    assert out == ""
    assert err.startswith(f"kv-convert: {source}: ") and "byte offset" in err and reason in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.db"]  # neither OUT nor OUT.tmp


def test_missing_input_and_usage_errors_exit_2(tmp_path: Path, capsys: Capture) -> None:
    status, _, err = run(capsys, tmp_path / "nope.db", tmp_path / "out.db")
    assert status == 2 and "nope.db: no such file" in err
    assert run(capsys, tmp_path, tmp_path / "out.db")[0] == 2  # a directory
    assert run(capsys, "--dump", tmp_path / "nope.db")[0] == 2
    for args in (["only-in"], ["a", "b", "c"], ["--dump", "a", "b"], ["--dump", "--stats", "a"],
                 ["--dump", "a", "--force"], ["a", "b", "--aof-load-truncated"], ["a", "b", "--to", "xml"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2, args
    assert not (tmp_path / "out.db").exists()


def test_unwritable_out_exits_2(tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "in.db"
    source.write_bytes(snapshot_bytes(ENTRIES))
    status, _, err = run(capsys, source, tmp_path / "no-such-dir" / "out.db")
    assert status == 2 and "cannot create" in err


def test_help_lists_every_mode_and_the_exit_statuses(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--to", "--force", "--from-aof DIR", "--dump", "--stats", "--aof-load-truncated",
                 "pip install kv-server", "exit status", "1  damaged input", "2  usage error"):
        assert text in out, text


@pytest.mark.parametrize("encoding", ["plaintext", "binary"])
def test_dump_prints_one_tagged_json_line_per_entry(tmp_path: Path, capsys: Capture,
                                                    encoding: str) -> None:
    source = tmp_path / "in.db"
    source.write_bytes(snapshot_bytes(ENTRIES, encoding))
    status, out, err = run(capsys, "--dump", source)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == '["s","string","text",null]'
    assert lines[1] == '[{"$bytes":"/wA="},"string",{"$bytes":"AAE="},1800000000000]'
    assert json.loads(lines[2])[2] == {"$int": "-40000000000000000000000"}
    assert len(lines) == len(ENTRIES)


def test_dump_of_a_damaged_file_prints_what_precedes_the_damage_then_exits_1(
        tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "in.db"
    source.write_bytes(snapshot_bytes(ENTRIES)[:-10])
    status, out, err = run(capsys, "--dump", source)
    assert status == 1 and "truncated" in err
    assert len(out.splitlines()) == len(ENTRIES)


def test_stats_summarises_header_kinds_and_sizes(tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(snapshot_bytes(ENTRIES, "binary", aof_position=77))
    status, out, _ = run(capsys, "--stats", source)
    assert status == 0
    rows = dict(line.split("  ", 1) for line in out.splitlines())
    rows = {label.strip(): value.strip() for label, value in rows.items()}
    assert rows["encoding"] == "binary" and rows["entries"] == "6" and rows["aof_position"] == "77"
    assert rows["file size"] == f"{source.stat().st_size} bytes"
    assert rows["created_ms"] == "1700000000000 (2023-11-14T22:13:20.000Z)"
    assert rows["string keys"].startswith("4, values ~")
    assert rows["list keys"].startswith("1, 4 elements")
    assert rows["hash keys"].startswith("1, 2 fields")
    assert rows["keys with deadline"] == "2"
    assert rows["key bytes"] == str(1 + 2 + 3 + 3 + 1 + 1)
    starts = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in out.splitlines()}
    assert len(starts) == 1  # the values form one column


def test_memory_does_not_grow_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_convert, "CHUNK_BYTES", 64 * 1024)
    source = tmp_path / "in.db"
    count = 50_000
    writer = SnapshotWriter("plaintext", count, 0, 0)
    with source.open("wb") as out:
        out.write(writer.header())
        for start in range(0, count, 5000):
            batch = range(start, start + 5000)
            out.write(writer.entries((f"key:{i}", "string", "v" * 100, None) for i in batch))
        out.write(writer.trailer())
    size = source.stat().st_size
    tracemalloc.start()
    try:
        assert main([str(source), str(tmp_path / "out.bin")]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 6_000_000
    assert peak < size / 8, (peak, size)


def _data_dir(tmp_path: Path, *records: bytes) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "kv.db").write_bytes(snapshot_bytes([], aof_position=0))
    (directory / "kv.aof").write_bytes(encode_header(0) + b"".join(records))
    return directory


def test_from_aof_refuses_what_is_not_a_data_directory(tmp_path: Path, capsys: Capture) -> None:
    assert run(capsys, "--from-aof", tmp_path / "nope", tmp_path / "out.db")[0] == 2
    status, _, err = run(capsys, "--from-aof", tmp_path, tmp_path / "out.db")
    assert status == 2 and "not a kv data directory" in err


def test_from_aof_refuses_a_directory_a_server_holds(tmp_path: Path, capsys: Capture) -> None:
    directory = _data_dir(tmp_path)
    fd = os.open(directory / "kv.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"4242\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status, _, err = run(capsys, "--from-aof", directory, tmp_path / "out.db")
    finally:
        os.close(fd)
    assert status == 2 and "in use by a running kv-server (pid 4242)" in err
    assert not (tmp_path / "out.db").exists()


def test_from_aof_replays_and_reports_damage_in_the_original_directory(
        tmp_path: Path, capsys: Capture) -> None:
    good = encode_record(1_700_000_000_000, ["SET", "k", 1])
    directory = _data_dir(tmp_path, good, encode_record(1_700_000_000_001, ["RPUSH", "l", "a"])[:-5])
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    status, _, err = run(capsys, "--from-aof", directory, tmp_path / "out.db")
    assert status == 1 and f"{directory}/kv.aof" in err and "incomplete" in err, err
    assert ".kv-convert-" not in err  # the copy's paths are not shown
    assert run(capsys, "--from-aof", directory, "--aof-load-truncated", tmp_path / "out.db")[0] == 0
    assert read_back(tmp_path / "out.db")[3] == [("k", "string", 1, None)]
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before  # DIR untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.db"]  # the copy is gone


def test_from_aof_never_writes_into_dir(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "kv.aof").write_bytes(encode_header(0))
    status, _, err = run(capsys, "--from-aof", tmp_path, tmp_path / "rebuilt.db")
    assert status == 2 and "OUT is inside DIR" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kv.aof"]
