import kv_server


def test_all_is_sorted_and_complete() -> None:
    assert kv_server.__all__ == sorted(kv_server.__all__)
    public = {name for name in vars(kv_server) if not name.startswith("_")}
    assert public | {"__version__"} == set(kv_server.__all__)
