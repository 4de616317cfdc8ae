"""kv-convert --from-aof: rebuild a data directory's dataset offline, as start-up does.

Why a server process, not a replay here: rebuilding means executing every logged
command with the keyspace clock set to its record's timestamp, that is, running
kv-server's command implementations. kv-tools may not depend on kv-server
(dependencies point one way; ``tests/test_lockstep.py``), and importing
``kv_server._recovery`` lazily would still tie this tool to the server's private
start-up internals while hiding the dependency from the import check. A second
replay written here would drift from the server's. So this module runs the real
thing through its public interface, the ``kv-server`` command, exactly as
``kv_tools._server_process`` already does for kv-bench: ``python -m kv_server`` on a
temporary copy of the directory loads ``kv.db``, replays ``kv.aof.1``, ``kv.aof.2``,
..., ``kv.aof`` past the snapshot's position, saves the result as ``kv.db`` (start-up
step 4), and prints its ready line; SIGTERM then stops it. kv-server must be
installed in the same environment; kv-convert says so when it is not.

Rules:

1. DIR is never written. ``kv.aof*`` are copied (start-up replaces and deletes
   them); ``kv.db`` is hard-linked where possible (the server only ever replaces it
   by rename, never writes it in place), else copied. The copy lives in a temporary
   directory beside OUT and is removed afterwards.
2. A server running on DIR makes the copy inconsistent, so DIR's lock is taken
   (shared, non-blocking) for as long as the copy takes; a held lock is refused.
3. The throwaway server listens on 127.0.0.1, port 0, with a random password in a
   mode-0600 file; nothing else uses it before SIGTERM.
4. The server's start-up errors are passed on with the copy's paths turned back
   into DIR's. Its errors about damaged files (they point to kv-aof-check or to
   "Recovering from damaged files" in docs/persistence.md) exit 1; any other
   failure exits 2.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Final

from kv_protocol.records.aof import AofFormatError, AofReader
from kv_protocol.records.snapshot import SnapshotHeader, SnapshotWriter, detect_encoding

from ._convert import EXIT_CORRUPT, FILE_MODE, ConvertError, check_paths, convert
from ._files import ServerRunningError, server_lock
from ._server_process import password_file, start_kv_server

SNAPSHOT: Final = "kv.db"
AOF: Final = "kv.aof"
_SEGMENT: Final = re.compile(r"kv\.aof\.\d+")
# Loading time grows with the data (about a million records a few seconds); an hour
# covers any dataset that fits in memory, and a stuck server must not hang the tool.
LOAD_TIMEOUT_S: Final = 3600.0
# The server's start-up errors about damaged files point to the docs' recovery section
# or to kv-aof-check (kv_server._recovery); its other errors (I/O, lock) do neither.
DAMAGE_MARKERS: Final = ("Recovering from damaged files", "kv-aof-check")
NEEDS_SERVER: Final = "kv-convert --from-aof needs kv-server installed (pip install kv-server)"


def from_aof(directory: Path, target: Path, encoding: str | None = None, *, force: bool = False,
             allow_torn: bool = False, progress: bool = False) -> SnapshotHeader:
    """Build the snapshot ``target`` from the data directory ``directory`` (rules 1-4).

    Args:
        encoding: ``target``'s encoding; by default that of the snapshot start-up saves
            (the encoding of DIR's ``kv.db``, plaintext without one).
        allow_torn: drop a torn last record, as ``kv-server --aof-load-truncated``.

    Raises:
        ConvertError: status 1 for damaged files, 2 for usage, I/O and server failures.
    """
    if not directory.is_dir():
        missing = "not a directory" if directory.exists() else "no such directory"
        raise ConvertError(f"{directory}: {missing}")
    names = sorted(p.name for p in directory.iterdir()
                   if p.name in (SNAPSHOT, AOF) or _SEGMENT.fullmatch(p.name))
    if not names:
        raise ConvertError(f"{directory}: no {SNAPSHOT} or {AOF} files: not a kv data directory")
    if target.resolve().parent == directory.resolve():
        raise ConvertError(f"{target}: OUT is inside DIR, which kv-convert never changes; "
                           "write it elsewhere")
    if os.path.lexists(target) and not force:
        raise ConvertError(f"{target}: already exists; pass --force to replace it")
    if importlib.util.find_spec("kv_server") is None:
        raise ConvertError(NEEDS_SERVER)
    try:
        work = Path(tempfile.mkdtemp(prefix=".kv-convert-", dir=target.parent))
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConvertError(f"{target.parent}: cannot create a working directory: {reason}") from None
    try:
        data = work / "data"
        data.mkdir(mode=0o700)
        try:
            with server_lock(directory, shared=True):  # rule 2: no server changes DIR meanwhile
                for name in names:
                    _copy(directory / name, data / name, link=name == SNAPSHOT)
        except ServerRunningError as exc:
            raise ConvertError(f"{exc}; stop it first, or run kv-convert on its kv.db only") from None
        _run_startup(data, directory, allow_torn)
        result = data / SNAPSHOT
        if not result.exists():  # no snapshot and nothing replayed: an empty dataset
            _write_empty(result, _covered_position(data / AOF))
        if encoding is None:
            with open(result, "rb") as source:
                encoding = detect_encoding(source.read(8)) or "plaintext"
        check_paths(result, target, force=force)
        return convert(result, target, encoding, force=force, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy(source: Path, destination: Path, *, link: bool) -> None:
    try:
        if link:
            try:
                os.link(source, destination)
                return
            except OSError:
                pass  # another file system, or links not allowed: copy instead
        shutil.copyfile(source, destination)
    except OSError as exc:
        raise ConvertError(f"{source}: cannot copy: {exc.strerror or exc}") from None


def _run_startup(data: Path, directory: Path, allow_torn: bool) -> None:
    """Start kv-server on ``data`` until its ready line (start-up done), then SIGTERM it."""
    password_path, password = password_file(data.parent)
    options = ["--appendfsync", "no", *(["--aof-load-truncated"] if allow_torn else [])]
    try:
        server = start_kv_server(data, password_path, password, *options, start_timeout_s=LOAD_TIMEOUT_S)
    except RuntimeError as exc:
        log = data.with_name(data.name + ".log")
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = str(exc)
        prefix = "kv-server: "
        lines = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
        message = "\n".join(lines or [str(exc)]).replace(str(data), str(directory))
        status = EXIT_CORRUPT if any(marker in message for marker in DAMAGE_MARKERS) else 2
        raise ConvertError(message, status) from None
    except OSError as exc:
        raise ConvertError(f"cannot start kv-server: {exc}") from None
    try:
        server.stop()
    except RuntimeError as exc:
        raise ConvertError(f"kv-server on a copy of {directory}: {exc}") from None


def _covered_position(aof: Path) -> int:
    """The position the fresh ``kv.aof`` of a finished start-up begins at."""
    reader = AofReader()
    try:
        with open(aof, "rb") as source:
            reader.feed(source.readline())
    except (OSError, AofFormatError) as exc:
        raise ConvertError(f"{aof}: kv-server left no readable AOF header: {exc}") from None
    if reader.start is None:
        raise ConvertError(f"{aof}: kv-server left no AOF header")
    return reader.start


def _write_empty(path: Path, position: int) -> None:
    from time import time

    writer = SnapshotWriter("plaintext", 0, position, int(time() * 1000))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(writer.header() + writer.trailer())
