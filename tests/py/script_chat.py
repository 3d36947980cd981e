"""python-librtmp as a client of the chat example (examples/scripts/chat), driven by
tests/tests/scripts_examples.rs.

Connects as "alice" (a connect argument), answers the script's `welcome` call, calls the
script's methods `who`, `say` (and sees its broadcast), `welcomeAnswer` (what the script
kept of our answer) and `fail` (an exception: `_error`), and hears the other client
leave (`onLeft`, broadcast by onDisconnect). Prints one line per step.
"""
import json
import sys

import librtmp

conn = librtmp.RTMP(sys.argv[1] + " conn=S:alice", live=True, timeout=20)
conn.connect()


def say(*parts):
    print(*parts, flush=True)


@conn.invoke_handler
def welcome(count):
    return "thanks %d" % count


conn.process_packets(invoked_method="welcome", timeout=10)
say("welcomed")
say("who:", json.dumps(conn.call("who").result(timeout=10)))
say("ready")
# The test's own client joins now; wait for the line it says.
say("heard:", json.dumps(conn.process_packets(invoked_method="onMessage", timeout=30)))
say("say:", json.dumps(conn.call("say", "hi").result(timeout=10)))
say("welcomeAnswer:", json.dumps(conn.call("welcomeAnswer").result(timeout=10)))
conn.call("fail")
say("fail:", json.dumps(conn.process_packets(invoked_method="_error", timeout=10)))
# The test's client leaves: the script's onDisconnect tells the room.
say("left:", json.dumps(conn.process_packets(invoked_method="onLeft", timeout=30)))
conn.close()
