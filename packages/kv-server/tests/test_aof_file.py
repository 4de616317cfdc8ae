"""The server's AppendOnlyFile: group commit, segment changes and positions, on real files."""

from __future__ import annotations

from pathlib import Path

from kv_protocol.records.aof import MAX_LINE_BYTES, AofReader, encode_record
from kv_server._aof import AppendOnlyFile
from kv_server._config import FsyncPolicy


def read(path: Path) -> AofReader:
    reader = AofReader()
    reader.feed(path.read_bytes())
    reader.finish(allow_torn=False)
    return reader


async def test_one_commit_writes_every_queued_record_and_releases_the_group(tmp_path: Path) -> None:
    aof = AppendOnlyFile(tmp_path, FsyncPolicy.ALWAYS, 100)
    group = aof.group
    aof.log(1, ["SET", "a", 1])
    aof.log(2, ["SET", "b", 2])
    await aof.step()
    assert group.done.is_set() and group.error is None
    assert aof.group is not group and aof.fsyncs == 1
    reader = read(tmp_path / "kv.aof")
    assert reader.start == 100 and reader.records == 2
    assert reader.end_position == aof.position == aof.written == aof.synced
    aof.close()


async def test_a_segment_change_splits_at_the_position_a_snapshot_covers(tmp_path: Path) -> None:
    aof = AppendOnlyFile(tmp_path, FsyncPolicy.EVERYSEC, 0)
    aof.log(1, ["SET", "before", 1])
    covered = aof.rotate()
    aof.log(2, ["SET", "after", 2])
    await aof.step()
    old, new = read(tmp_path / "kv.aof.1"), read(tmp_path / "kv.aof")
    assert old.start == 0 and old.end_position == covered == len(encode_record(1, ["SET", "before", 1]))
    assert new.start == covered and new.records == 1
    assert aof.position == new.end_position
    assert [segment.end for segment in aof.frozen] == [covered]
    aof.snapshot_saved(covered)
    await aof.step()
    assert not (tmp_path / "kv.aof.1").exists() and aof.frozen == []
    aof.close()


async def test_a_failed_write_is_cut_back_refused_and_retried(tmp_path: Path) -> None:
    aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    aof.log(1, ["SET", "ok", 1])
    await aof.step()
    good = aof.size
    real_fd = aof.fd
    aof.fd = -1  # EBADF: any write fails, as on a disk that went away
    aof.log(2, ["SET", "lost?", 2])
    group = aof.group
    await aof.step()
    assert group.error is not None and "cannot write" in group.error
    assert aof.error == group.error and aof.unwritten
    aof.fd = real_fd
    await aof.step()
    assert aof.error is None and not aof.unwritten and aof.size > good
    assert read(tmp_path / "kv.aof").records == 2
    aof.close()


async def test_a_record_too_long_to_read_back_fails_its_group_until_a_save(tmp_path: Path) -> None:
    aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    group = aof.group
    aof.log(1, ["SET", "huge", "\x01" * (MAX_LINE_BYTES // 5)])  # six bytes each in JSON
    await aof.step()
    assert group.error is not None and "could not be logged" in group.error
    assert aof.broken and aof.error is not None
    aof.snapshot_saved(aof.position)  # a snapshot holds the dataset: writes resume
    await aof.step()
    assert aof.error is None and read(tmp_path / "kv.aof").records == 0
    aof.close()
