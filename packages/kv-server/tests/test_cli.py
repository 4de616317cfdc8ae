import logging
import stat
from pathlib import Path

import pytest

from kv_server._cli import build_parser, config_from_args, load_or_create_password, main, read_password_file


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return config_from_args(build_parser().parse_args(list(argv)))


def test_password_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    password, path = load_or_create_password(tmp_path)
    assert path == tmp_path / "kv.pass"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(password) >= 40
    assert load_or_create_password(tmp_path) == (password, path)


def test_a_readable_password_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "kv.pass").write_text("secret\n")
    (tmp_path / "kv.pass").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="kv_server"):
        assert load_or_create_password(tmp_path)[0] == "secret"
    assert "readable by other users" in caplog.text and "secret" not in caplog.text


def test_defaults(tmp_path: Path) -> None:
    config, note = parse("--dir", str(tmp_path / "data"))
    assert (config.bind, config.port, config.unix_path) == (("127.0.0.1",), 6378, None)
    assert (tmp_path / "data").is_dir() and stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert note == f"password in {tmp_path / 'data' / 'kv.pass'}"
    assert config.password not in repr(config)


def test_flags(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from file\r\nignored\n")
    config, note = parse("--pass-file", str(secret), "--bind", "127.0.0.1", "--bind", "::1",
                         "--port", "0", "--unix", str(tmp_path / "s"), "--dir", str(tmp_path),
                         "--verbose", "--auth-iterations", "5000", "--handshake-timeout", "2.5")
    assert config.password == "from file"
    assert config.bind == ("127.0.0.1", "::1")
    assert (config.port, config.unix_path, config.verbose) == (0, tmp_path / "s", True)
    assert (config.auth_iterations, config.handshake_timeout_s) == (5000, 2.5)
    assert note == f"password in {secret}"


def test_unix_only(tmp_path: Path) -> None:
    config, _ = parse("--pass", "p", "--no-tcp", "--unix", str(tmp_path / "s"), "--dir", str(tmp_path))
    assert not config.tcp


def test_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_password_file(tmp_path / "pw")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "outside 0..65535"),
        (["--no-tcp"], "nothing to listen on"),
        (["--auth-iterations", "10"], "auth iterations"),
        (["--handshake-timeout", "0"], "must be positive"),
        (["--pass-file", "/nonexistent/pw"], "No such file"),
        (["--pass", "same-secret", "--readonly-pass", "same-secret"], "must be set and differ"),
        (["--pass", "p", "--readonly-pass", ""], "must be set and differ"),
    ],
)
def test_bad_configuration_exits_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "same-secret" not in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "kv-server 0.1.0" in capsys.readouterr().out


def test_readonly_password_flags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, note = parse("--pass", "p", "--dir", str(tmp_path))
    assert config.readonly_password is None  # never on by default
    config, note = parse("--pass", "p", "--readonly-pass", "r", "--dir", str(tmp_path))
    assert config.readonly_password == "r"
    assert note == "password from --pass, read-only password from --readonly-pass"
    secret = tmp_path / "ro"
    secret.write_text("reader\n")
    secret.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="kv_server"):
        config, note = parse("--pass", "p", "--readonly-pass-file", str(secret), "--dir", str(tmp_path))
    assert config.readonly_password == "reader" and note.endswith(f"read-only password in {secret}")
    assert "readable by other users" in caplog.text and "reader" not in caplog.text
    assert "reader" not in repr(config)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--readonly-pass", "a", "--readonly-pass-file", str(secret)])
