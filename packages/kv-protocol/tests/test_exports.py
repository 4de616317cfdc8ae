import kv_protocol


def test_all_is_sorted_and_complete() -> None:
    assert kv_protocol.__all__ == sorted(kv_protocol.__all__)
    public = {name for name in vars(kv_protocol) if not name.startswith("_")}
    public -= {"commands", "connection", "errors", "framing", "handshake", "messages", "records",
               "values"}
    assert public | {"__version__"} == set(kv_protocol.__all__)
