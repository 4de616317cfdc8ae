import subprocess
import sys


def test_importing_kv_protocol_loads_no_io_or_event_loop_modules() -> None:
    code = (
        "import sys, kv_protocol, kv_protocol.connection, kv_protocol.messages,"
        " kv_protocol.records.aof, kv_protocol.records.snapshot, kv_protocol.records.tagged;"
        "print(sorted(m for m in ('trio', 'asyncio', 'socket', 'ssl', 'selectors') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
