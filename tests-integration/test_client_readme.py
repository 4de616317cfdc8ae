"""Every Python example in packages/kv-client/README.md runs as written.

The examples read their server from ``KV_URL`` and ``KV_PASS`` (the README says
so), and the TLS, Unix socket and encryption examples their paths and keys from
``KV_CA``, ``KV_TLS_PORT``, ``KV_SOCKET``, ``KV_GPG_KEY`` and ``KV_AGE_KEY``: this
test makes all of those, then runs each block in a fresh namespace on an empty
keyspace, so a block depends on nothing but what it shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from crypto_helpers import write_tls_files
from gpg_keyrings import gpg_available, new_keyring
from integration_helpers import PASSWORD, ServerProcess, start_server

README = Path(__file__).parents[1] / "packages/kv-client/README.md"
EXAMPLES = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.M | re.S)


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    where = tmp_path_factory.mktemp("readme")
    files, ca_file = write_tls_files(trustme.CA(), where / "pki", "localhost", "127.0.0.1")
    socket_path = Path("/tmp") / f"kv-readme-{where.name}.sock"
    server: ServerProcess = start_server(where / "data", "--unix", str(socket_path), tls=files)
    try:
        import pyrage  # type: ignore[import-untyped]

        variables = {
            "KV_URL": f"kv://:{PASSWORD}@127.0.0.1:{server.port}", "KV_PASS": PASSWORD,
            "KV_CA": str(ca_file), "KV_TLS_PORT": str(server.tls_port), "KV_SOCKET": str(socket_path),
            "KV_AGE_KEY": str(pyrage.x25519.Identity.generate()),
        }
        if not gpg_available():
            yield variables
            return
        with new_keyring() as keyring:
            yield {**variables, "KV_GPG_KEY": keyring.fingerprint, "GNUPGHOME": keyring.home}
    finally:
        assert server.stop() == 0, server.log()


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{n}" for n in range(len(EXAMPLES))])
def test_readme_example_runs(example: str, environment: dict[str, str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    if "KV_GPG_KEY" in example and "KV_GPG_KEY" not in environment:
        pytest.skip("gpg or python-gnupg is missing (CI installs both)")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    from kv_client import Client

    with Client() as kv:
        kv.flushall()
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
