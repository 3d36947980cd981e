"""python-librtmp as an RPC client of stratad, driven by tests/tests/rpc_calls.rs.

Calls `add` (answered by the test's webhook) and `nosuch` (answered by nobody), then waits
for the server to call `hello` (answered) and `greet` (a broadcast). Prints one line per
step for the test to read.
"""
import json
import sys

import librtmp

conn = librtmp.RTMP(sys.argv[1], live=True, timeout=20)
conn.connect()


@conn.invoke_handler
def hello(name):
    return "hello " + name


def say(*parts):
    print(*parts, flush=True)


say("add:", json.dumps(conn.call("add", 2, 3).result(timeout=10)))
conn.call("nosuch", "x")
say("nosuch:", json.dumps(conn.process_packets(invoked_method="_error", timeout=10)))
say("ready")
conn.process_packets(invoked_method="hello", timeout=30)
say("answered hello")
say("greet:", json.dumps(conn.process_packets(invoked_method="greet", timeout=30)))
conn.close()
