import pytest

from kv_protocol.errors import (
    EXCEPTION_CLASSES,
    AuthError,
    ErrorCode,
    KvError,
    LocalProtocolError,
    NoPermError,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    WrongPassError,
    WrongTypeError,
    error_from_wire,
)


def test_every_code_has_exactly_one_class() -> None:
    assert set(EXCEPTION_CLASSES) == set(ErrorCode)
    classes = list(EXCEPTION_CLASSES.values())
    assert len(set(classes)) == len(classes)
    for code, cls in EXCEPTION_CLASSES.items():
        assert cls.code == code


@pytest.mark.parametrize("code", list(ErrorCode))
def test_wire_round_trip(code: ErrorCode) -> None:
    error = EXCEPTION_CLASSES[code]("something specific")
    tag, wire_code, message = error.to_wire()
    back = error_from_wire(wire_code, message)
    assert (tag, type(back), back.code, back.message) == (1, type(error), code, "something specific")


def test_default_messages_follow_redis() -> None:
    assert WrongTypeError().message == "Operation against a key holding the wrong kind of value"
    assert str(WrongTypeError()).startswith("WRONGTYPE ")


def test_unknown_codes_stay_readable() -> None:
    error = error_from_wire("NEWCODE", "from a newer server")
    assert type(error) is ServerError
    assert (error.code, error.message) == ("NEWCODE", "from a newer server")


@pytest.mark.parametrize(("code", "message"), [(1, "x"), ("ERR", None), (None, None)])
def test_malformed_error_replies(code: object, message: object) -> None:
    with pytest.raises(RemoteProtocolError):
        error_from_wire(code, message)


def test_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(ProtocolError, KvError) and issubclass(ServerError, KvError)
    assert issubclass(WrongPassError, AuthError) and issubclass(AuthError, ServerError)
    # NOPERM keeps the connection open, unlike the AuthErrors.
    assert issubclass(NoPermError, ServerError) and not issubclass(NoPermError, AuthError)
