"""The keyspace's deadlines against a model: lazy and active expiry, and the buckets."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kv_server._expiry import BUCKET_BITS, DeadlineBuckets
from kv_server._keyspace import MISSING, Keyspace

KEYS = st.sampled_from(["a", "b", b"a", "c", "d"])


class KeyspaceWithDeadlines(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000
        self.keyspace = Keyspace(clock=lambda: self.now)
        self.model: dict[object, tuple[object, int | None]] = {}

    def _live(self) -> dict[object, object]:
        return {k: v for k, (v, d) in self.model.items() if d is None or d > self.now}

    @rule(key=KEYS, value=st.integers())
    def set(self, key: str | bytes, value: int) -> None:
        self.keyspace.set(key, value)
        self.model[key] = (value, None)

    @rule(key=KEYS, value=st.integers())
    def replace_existing(self, key: str | bytes, value: int) -> None:
        if self.keyspace.peek(key) is not MISSING:
            self.keyspace.replace(key, value)
            self.model[key] = (value, self.model[key][1])

    @rule(key=KEYS, offset=st.integers(1, 2000) | st.none())
    def set_deadline(self, key: str | bytes, offset: int | None) -> None:
        if self.keyspace.peek(key) is MISSING:
            return
        deadline = None if offset is None else self.now + offset
        self.keyspace.set_deadline(key, deadline)
        self.model[key] = (self.model[key][0], deadline)

    @rule(key=KEYS)
    def delete(self, key: str | bytes) -> None:
        assert self.keyspace.delete(key) == (key in self._live())
        self.model.pop(key, None)

    @rule(ms=st.integers(0, 700))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule()
    def expire_due(self) -> None:
        while self.keyspace.expire_due(0.01):
            pass
        # Every key whose bucket has fully passed is gone from memory.
        for key, deadline in self.keyspace.expires.items():
            assert (deadline >> BUCKET_BITS) + 1 << BUCKET_BITS > self.now, key

    @rule()
    def flush(self) -> None:
        self.keyspace.flush()
        self.model.clear()

    @invariant()
    def reads_see_the_model(self) -> None:
        live = self._live()
        for key in ["a", "b", b"a", "c", "d"]:
            value = self.keyspace.peek(key)
            assert (value is MISSING) == (key not in live)
            if key in live:
                assert value == live[key]
                assert self.keyspace.deadline(key) == self.model[key][1]

    @invariant()
    def buckets_hold_exactly_the_deadlines(self) -> None:
        keyspace = self.keyspace
        assert set(keyspace.expires) <= set(keyspace.data)
        in_buckets = {(key, number) for number, keys in keyspace.buckets.sets.items() for key in keys}
        assert in_buckets == {(key, d >> BUCKET_BITS) for key, d in keyspace.expires.items()}
        assert all(keyspace.buckets.sets.values()), "no empty bucket is kept"


TestKeyspaceWithDeadlines = KeyspaceWithDeadlines.TestCase
TestKeyspaceWithDeadlines.settings = settings(max_examples=150, stateful_step_count=40)


def test_heap_of_bucket_numbers_stays_bounded_under_churn() -> None:
    buckets = DeadlineBuckets()
    for step in range(10_000):
        buckets.add("k", 5_000 + step % 3)  # the same bucket, emptied and refilled
        buckets.discard("k", 5_000 + step % 3)
    assert len(buckets.order) <= 2 * len(buckets.sets) + 65
    assert len(buckets) == 0
