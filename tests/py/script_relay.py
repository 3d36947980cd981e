"""python-librtmp as a client of the relay example (examples/scripts/relay), driven by
tests/tests/scripts_relay.rs: argv[1] the relay's URL, argv[2] a URI where nothing listens.

Waits until the relay's server-side NetConnection is up, has it relay `upper` (answered by
the far application), `greeting` (what the far application got when it called `hello` on
the relay's connection) and `nosuch` (an error), then has it probe argv[2]. Prints one line
per step. Then it probes rtmp:/echo without the relay's arguments (refused by echo's
script, whose message comes back).
"""
import json
import sys
import time

import librtmp

conn = librtmp.RTMP(sys.argv[1], live=True, timeout=20)
conn.connect()


def say(*parts):
    print(*parts, flush=True)


for _ in range(100):
    if conn.call("linked").result(timeout=10):
        break
    time.sleep(0.1)
say("linked")
say("relay:", json.dumps(conn.call("relay", "upper", "hello").result(timeout=10)))
say("upper:", json.dumps(conn.process_packets(invoked_method="onRelayed", timeout=10)))
conn.call("relay", "greeting")
say("greeting:", json.dumps(conn.process_packets(invoked_method="onRelayed", timeout=10)))
conn.call("relay", "nosuch")
say("nosuch:", json.dumps(conn.process_packets(invoked_method="onRelayFailed", timeout=10)))
say("probe:", json.dumps(conn.call("probe", sys.argv[2]).result(timeout=10)))
say("probed:", json.dumps(conn.process_packets(invoked_method="onProbe", timeout=20)))
# echo refuses a connect that is not a relay's, with a message of its script's.
conn.call("probe", "rtmp:/echo")
say("refused:", json.dumps(conn.process_packets(invoked_method="onProbe", timeout=20)))
conn.close()
