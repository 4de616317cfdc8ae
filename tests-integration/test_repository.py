"""Promises the repository makes in prose: the README's commands, CI, the docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from integration_helpers import PASSWORD, ServerProcess
from kv_protocol.errors import ErrorCode

ROOT = Path(__file__).parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"^    (python3 -m venv .*)$", (ROOT / "README.md").read_text(), re.M)


def test_readme_starts_with_the_two_commands() -> None:
    server, tests = readme_commands()
    assert server.endswith("kv-server") and tests.endswith("nox")
    head = (ROOT / "README.md").read_text().split("## ")[0]
    assert server in head and tests in head


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines()
             if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert lines == [readme_commands()[1]]


def test_protocol_doc_lists_every_error_code() -> None:
    text = (ROOT / "docs/protocol.md").read_text()
    assert all(f"| `{code}` |" in text for code in ErrorCode)


def test_protocol_doc_example_runs(kv_server: ServerProcess) -> None:
    text = (ROOT / "docs/protocol.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", text, re.S)
    example = example.replace('b"password"', repr(PASSWORD.encode()))
    example = example.replace('("127.0.0.1", 6378)', repr((kv_server.host, kv_server.port)))
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 'OK'] [0, 42]"


def test_server_default_port_is_the_documented_one() -> None:
    from kv_server._config import DEFAULT_PORT

    assert f"127.0.0.1:{DEFAULT_PORT}" in (ROOT / "README.md").read_text()
