"""Expiry on a real server: keys go away by themselves, and keys without a TTL stay."""

from __future__ import annotations

import time

from kv_client import Client

POLL_LIMIT_S = 20.0


def _info_keyspace(client: Client) -> dict[str, int]:
    section: dict[str, int] = client.info("keyspace")["keyspace"]
    return section


def test_active_expiry_reclaims_keys_nobody_reads(client: Client) -> None:
    for i in range(2000):
        client.execute_command("SET", f"ttl:{i}", i, "PX", 3000 + i % 500)
    client.execute_command("SET", "keep", "me")
    assert _info_keyspace(client)["expires"] == 2000
    limit = time.monotonic() + POLL_LIMIT_S
    # DBSIZE counts keys without looking them up, so it only drops if the
    # background task removed them.
    while client.dbsize() > 1 and time.monotonic() < limit:
        time.sleep(0.05)
    assert client.dbsize() == 1
    assert _info_keyspace(client)["expires"] == 0
    assert client.info("stats")["stats"]["expired_keys"] == 2000
    assert client.get("keep") == "me"


def test_mixing_ttl_and_plain_keys(client: Client) -> None:
    # The crowRedis seed broke plain GETs once a key had been SET with a TTL.
    client.set("plain", 1)
    client.execute_command("SET", "brief", 2, "PX", 50)
    client.execute_command("SET", "lasting", 3, "EX", 3600)
    client.set("plain2", [4])
    assert client.mget("plain", "brief", "lasting", "plain2") == [1, 2, 3, [4]]
    time.sleep(0.1)
    assert client.mget("plain", "brief", "lasting", "plain2") == [1, None, 3, [4]]
    assert client.execute_command("TTL", "plain") == -1
    assert 3590 < client.execute_command("TTL", "lasting") <= 3600
    client.set("brief", "back")
    assert client.get("brief") == "back" and client.execute_command("TTL", "brief") == -1
