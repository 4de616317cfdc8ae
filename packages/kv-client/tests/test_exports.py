import kv_client
from kv_protocol.errors import EXCEPTION_CLASSES


def test_all_is_sorted_and_complete() -> None:
    assert kv_client.__all__ == sorted(kv_client.__all__)
    public = {name for name in vars(kv_client) if not name.startswith("_")}
    assert public | {"__version__"} == set(kv_client.__all__)


def test_every_error_code_has_its_exception_importable_from_kv_client() -> None:
    for cls in EXCEPTION_CLASSES.values():
        assert getattr(kv_client, cls.__name__) is cls


def test_transport_errors_are_kv_errors_and_builtins() -> None:
    assert issubclass(kv_client.ConnectionError, (kv_client.KvError, ConnectionError))
    assert issubclass(kv_client.TimeoutError, (kv_client.KvError, TimeoutError))
