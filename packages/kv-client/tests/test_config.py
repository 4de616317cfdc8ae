"""Configuration from arguments, URLs and the environment, without a server."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_client._config import ClientConfig, parse_url


@pytest.mark.parametrize(("url", "expected"), [
    ("kv://db:7000", {"host": "db", "port": 7000}),
    ("kv://:p%40ss%2Fword@db", {"host": "db", "password": "p@ss/word"}),
    ("kv://[::1]:6378?name=w1&timeout=2.5", {"host": "::1", "port": 6378, "name": "w1", "timeout": 2.5}),
    ("kv://h?timeout=none&pool_timeout=&max_connections=3",
     {"host": "h", "timeout": None, "pool_timeout": None, "max_connections": 3}),
    ("unix:///run/kv/kv.sock?password=pw&name=n", {"unix_path": "/run/kv/kv.sock", "password": "pw",
                                                    "name": "n"}),
    ("unix://:pw@/tmp/kv%20dir/kv.sock", {"unix_path": "/tmp/kv dir/kv.sock", "password": "pw"}),
])
def test_urls(url: str, expected: dict[str, object]) -> None:
    assert parse_url(url) == expected


def test_kvs_turns_tls_on_with_the_system_store_or_the_given_ca(tmp_path: Path) -> None:
    assert parse_url("kvs://db")["ssl"] is True
    assert ClientConfig.resolve(url="kvs://db", password="p").ssl is not None
    with pytest.raises(ValueError, match="cannot load the CA file"):
        parse_url(f"kvs://db?ca={tmp_path / 'missing.pem'}")


@pytest.mark.parametrize(("url", "message"), [
    ("http://db", "the scheme must be one of kv://, kvs://, unix://"),
    ("kv://db:99999", "the port is not a number"),
    ("kv://db?timeout=-1", "timeout must be seconds"),
    ("kv://db?timeout=0", "timeout must be seconds"),
    ("kv://db?health_check_interval=none", "health_check_interval must be seconds"),
    ("kv://db?max_connections=0", "max_connections must be a whole number"),
    ("kv://db?colour=blue", "unknown parameter 'colour'"),
    ("unix://", "needs the socket's path"),
])
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_errors_never_show_the_password() -> None:
    for url in ("kv://:hunter2@db?colour=blue", "kv://db?password=hunter2&colour=blue",
                "http://:hunter2@db"):
        with pytest.raises(ValueError) as caught:
            parse_url(url)
        assert "hunter2" not in str(caught.value)


@given(st.tuples(st.sampled_from(["kv://", "kvs://", "unix://", ""]),
                 st.text(alphabet=st.characters(codec="utf-8"), max_size=60)).map("".join))
def test_any_text_parses_or_raises_value_error(url: str) -> None:
    with contextlib.suppress(ValueError):
        parse_url(url)


def test_arguments_win_over_the_url_and_the_url_over_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_URL", "kv://:from-env-url@env-host:1111")
    monkeypatch.setenv("KV_PASS", "from-kv-pass")
    config = ClientConfig.resolve()
    assert (config.host, config.port, config.password) == ("env-host", 1111, "from-env-url")
    config = ClientConfig.resolve("explicit", url="kv://url-host:2222?name=u")
    assert (config.host, config.port, config.name, config.password) == (
        "explicit", 2222, "u", "from-kv-pass")
    config = ClientConfig.resolve(port=3333)  # an address given: KV_URL is not read
    assert (config.host, config.port, config.password) == ("127.0.0.1", 3333, "from-kv-pass")


def test_ssl_true_keeps_the_urls_ca_context(tmp_path: Path) -> None:
    context = ssl.create_default_context()
    config = ClientConfig.resolve(url="kvs://db", ssl=context, password="p")
    assert config.ssl is context
    assert ClientConfig.resolve(url="kvs://db", ssl=False, password="p").ssl is None


def test_addresses_are_shown_unambiguously() -> None:
    assert ClientConfig("p", host="::1", port=6378).address == "[::1]:6378"
    assert ClientConfig.resolve(url="kvs://db:6380", password="p").address == "tls:db:6380"
