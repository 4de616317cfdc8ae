"""The ``kv`` command end to end: a subprocess against a real kv-server.

Most tests share one server (``module_kv_server``) and use keys named after
themselves; the password tests start servers of their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trustme

from crypto_helpers import write_tls_files
from integration_helpers import PASSWORD, ServerProcess, start_server
from kv_protocol.commands import COMMANDS

RUN_TIMEOUT_S = 30.0
"""Generous for a loaded CI machine: a run takes about a fifth of a second."""


def kv(server: ServerProcess, *args: str, stdin: bytes | None = None, password: str | None = PASSWORD,
       env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kv_client`` against ``server``; KV_PASS is cleared unless ``env`` sets it."""
    command = [sys.executable, "-m", "kv_client", "--port", str(server.port)]
    if password is not None:
        command += ["--pass", password]
    environment = {key: value for key, value in os.environ.items() if key != "KV_PASS"}
    result = subprocess.run([*command, *args], input=stdin, capture_output=True, timeout=RUN_TIMEOUT_S,
                            env={**environment, **(env or {})}, cwd=cwd, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(), result.stderr.decode())


def ok(server: ServerProcess, *args: str, stdin: bytes | None = None) -> str:
    result = kv(server, *args, stdin=stdin)
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout


def test_typed_values_keep_their_types(module_kv_server: ServerProcess) -> None:
    server = module_kv_server
    assert ok(server, "--typed", "SET", "typed:int", "42") == "OK\n"
    assert ok(server, "--typed", "SET", "typed:list", '[1,"a",null,2.5]') == "OK\n"
    assert ok(server, "SET", "typed:text", "42") == "OK\n"
    assert ok(server, "--typed", "MSET", "typed:bool", "true", "typed:bytes", '{"$bytes":"/w=="}') == "OK\n"
    with server.client() as client:
        assert client.get("typed:int") == 42
        assert client.get("typed:list") == [1, "a", None, 2.5]
        assert client.get("typed:text") == "42"
        assert client.get("typed:bool") is True
        assert client.get("typed:bytes") == b"\xff"
    assert ok(server, "GET", "typed:int") == "42\n"
    assert ok(server, "INCRBY", "typed:int", "-2") == "40\n"
    assert ok(server, "GET", "typed:bool") == "true\n"
    assert ok(server, "GET", "typed:bytes") == "\\xff\n"
    assert ok(server, "GET", "typed:missing") == "\n"


def test_json_output_is_lossless(module_kv_server: ServerProcess) -> None:
    with module_kv_server.client() as client:
        client.execute("HSET", "json:h", "text", "42", b"raw", 42)
    assert ok(module_kv_server, "--json", "HGETALL", "json:h") == (
        '{"$map":[["text","42"],[{"$bytes":"cmF3"},42]]}\n')
    assert ok(module_kv_server, "--json", "GET", "json:missing") == "null\n"


def test_lists_and_maps_print_for_shell_tools(module_kv_server: ServerProcess) -> None:
    server = module_kv_server
    assert ok(server, "--typed", "RPUSH", "shell:l", '"a b"', "1", "[1,2]", '"x\\ny"') == "4\n"
    assert ok(server, "LRANGE", "shell:l", "0", "-1") == 'a b\n1\n[1,2]\n"x\\ny"\n'
    assert ok(server, "LRANGE", "shell:none", "0", "-1") == ""
    assert ok(server, "HSET", "shell:h", "f", "v", "g", "w") == "2\n"
    assert ok(server, "HGETALL", "shell:h") == "f\tv\ng\tw\n"


def test_info_in_redis_layout(module_kv_server: ServerProcess) -> None:
    sections = ok(module_kv_server, "INFO", "server", "keyspace").split("\n\n")
    server_lines = sections[0].splitlines()
    assert server_lines[0] == "# Server"
    assert f"tcp_port:{module_kv_server.port}" in server_lines
    assert sections[1].startswith("# Keyspace\nkeys:")
    assert all(":" in line for line in sections[1].splitlines()[1:])


def test_last_argument_from_stdin(module_kv_server: ServerProcess) -> None:
    server = module_kv_server
    assert ok(server, "SET", "stdin:text", "--", stdin=b"two\nlines\n") == "OK\n"
    assert ok(server, "SET", "stdin:bytes", "--", stdin=b"\xff\x00") == "OK\n"
    with server.client() as client:
        assert client.get("stdin:text") == "two\nlines\n"
        assert client.get("stdin:bytes") == b"\xff\x00"


def test_poll_with_count(module_kv_server: ServerProcess) -> None:
    started = time.monotonic()
    assert ok(module_kv_server, "--poll", "0.2", "--count", "3", "INCR", "poll:n") == "1\n2\n3\n"
    assert time.monotonic() - started >= 0.4


def test_ctrl_c_exits_130_without_a_traceback(module_kv_server: ServerProcess) -> None:
    command = [sys.executable, "-m", "kv_client", "--port", str(module_kv_server.port),
               "--pass", PASSWORD, "--poll", "0.1", "PING"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"PONG\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 130
    assert b"Traceback" not in err


def test_commands_list_needs_no_server(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kv_client", "--commands"], capture_output=True,
                            text=True, timeout=RUN_TIMEOUT_S, cwd=tmp_path, check=True)
    for spec in COMMANDS:
        assert f"  {spec.syntax}" in result.stdout


def test_error_reply_exits_1_on_stderr(module_kv_server: ServerProcess) -> None:
    ok(module_kv_server, "SET", "error:text", "v")
    result = kv(module_kv_server, "LPUSH", "error:text", "x")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("(error) WRONGTYPE ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_exits_1() -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "kv_client", "--port", str(port), "--pass", "p",
                             "PING"], capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"kv: cannot connect to 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(module_kv_server: ServerProcess) -> None:
    result = kv(module_kv_server, "--typed", "SET", "usage:k", "not json")
    assert result.returncode == 2
    assert "argument 2 (value) of SET: invalid JSON" in result.stderr
    assert kv(module_kv_server, "--count", "0", "PING").returncode == 2


def test_password_from_the_environment(module_kv_server: ServerProcess) -> None:
    result = kv(module_kv_server, "PING", password=None, env={"KV_PASS": PASSWORD})
    assert (result.returncode, result.stdout) == (0, "PONG\n")


def test_wrong_password_exits_1_and_is_never_printed(module_kv_server: ServerProcess) -> None:
    result = kv(module_kv_server, "PING", password="not-the-password")
    assert result.returncode == 1
    assert result.stderr.startswith("(error) WRONGPASS")
    assert "not-the-password" not in result.stdout + result.stderr


def test_password_from_the_servers_file(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", password=None)  # generates data/kv.pass
    try:
        # The default --dir is ./data, where the server was given its directory.
        result = kv(server, "PING", password=None, cwd=tmp_path)
        assert (result.returncode, result.stdout) == (0, "PONG\n"), result
        result = kv(server, "--dir", str(tmp_path / "data"), "PING", password=None)
        assert (result.returncode, result.stdout) == (0, "PONG\n"), result
        result = kv(server, "PING", password=None, cwd=tmp_path / "data")
        assert result.returncode == 2 and "no password" in result.stderr
    finally:
        assert server.stop() == 0, server.log()


def test_unix_socket(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--unix", str(tmp_path / "kv.sock"))
    try:
        result = kv(server, "--unix", str(tmp_path / "kv.sock"), "ECHO", "over unix")
        assert (result.returncode, result.stdout) == (0, "over unix\n"), result
    finally:
        assert server.stop() == 0, server.log()


def test_prompt_driven_through_a_pipe(module_kv_server: ServerProcess) -> None:
    script = b'SET repl:k "hello world"\nGET repl:k\nLPUSH repl:k x\nLLEN repl:none\nquit\nGET repl:k\n'
    result = kv(module_kv_server, stdin=script)
    assert result.stdout == "OK\nhello world\n0\n"
    assert result.stderr.startswith("(error) WRONGTYPE ")
    assert result.returncode == 1


def test_the_kv_script_is_installed() -> None:
    script = Path(sys.executable).parent / "kv"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S, check=True)
    assert result.stdout.startswith("kv ")


def test_url_gives_address_and_password(module_kv_server: ServerProcess) -> None:
    server = module_kv_server
    url = f"kv://:{PASSWORD}@127.0.0.1:{server.port}"
    result = kv(server, "--url", url, "ECHO", "via url", password=None)
    assert (result.returncode, result.stdout) == (0, "via url\n"), result
    command = [sys.executable, "-m", "kv_client", "ECHO", "via KV_URL"]
    environment = {key: value for key, value in os.environ.items() if key != "KV_PASS"}
    from_env = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              env={**environment, "KV_URL": url}, check=False)
    assert (from_env.returncode, from_env.stdout) == (0, "via KV_URL\n"), from_env


def test_tls_verifies_the_servers_certificate(tmp_path: Path) -> None:
    files, ca_file = write_tls_files(trustme.CA(), tmp_path / "pki", "127.0.0.1", "localhost")
    server = start_server(tmp_path / "data", tls=files)
    try:
        port = str(server.tls_port)
        trusted = kv(server, "--port", port, "--tls-ca", str(ca_file), "PING")
        assert (trusted.returncode, trusted.stdout) == (0, "PONG\n"), trusted
        untrusted = kv(server, "--port", port, "--tls", "PING")
        assert untrusted.returncode == 1 and "certificate verify failed" in untrusted.stderr, untrusted
    finally:
        assert server.stop() == 0, server.log()


def test_encrypt_and_decrypt_with_age(module_kv_server: ServerProcess, tmp_path: Path) -> None:
    import pyrage

    server = module_kv_server
    identity = tmp_path / "key.txt"
    identity.write_text(f"# a throwaway age key\n{pyrage.x25519.Identity.generate()}\n")
    stored = kv(server, "--encrypt", "--age", str(identity), "--typed", "SET", "secret:age", '{"pin": 1234}')
    assert (stored.returncode, stored.stdout) == (0, "OK\n"), stored
    with server.client() as client:
        raw = client.get("secret:age")
    assert isinstance(raw, bytes) and raw.startswith(b"\x00kvenc1:age\x00") and b"1234" not in raw
    read = kv(server, "--decrypt", "--age", str(identity), "--json", "GET", "secret:age")
    assert (read.returncode, read.stdout) == (0, '{"pin":1234}\n'), read
    refused = kv(server, "--encrypt", "--age", str(identity), "INCR", "secret:age")
    assert refused.returncode == 1 and "client-side encryption" in refused.stderr, refused
    no_key = kv(server, "--encrypt", "SET", "secret:gpg", "x", env={"KV_GPG_KEY": ""})
    assert no_key.returncode == 2 and "--encrypt needs --key" in no_key.stderr, no_key
