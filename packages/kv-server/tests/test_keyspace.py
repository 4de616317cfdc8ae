from kv_server._keyspace import MISSING, Keyspace


def test_reads_count_hits_and_misses_and_peeks_do_not() -> None:
    keyspace = Keyspace()
    keyspace.set("k", None)
    assert keyspace.read("k") is None
    assert keyspace.read("x") is MISSING
    assert keyspace.peek("x") is MISSING
    assert (keyspace.hits, keyspace.misses) == (1, 1)


def test_every_change_counts_as_dirty() -> None:
    keyspace = Keyspace()
    keyspace.set("a", 1)
    keyspace.set(b"b", 2)
    assert keyspace.delete("a") and not keyspace.delete("a")
    assert keyspace.flush() == 1
    assert keyspace.dirty == 4
    assert len(keyspace) == 0 and list(keyspace) == []
