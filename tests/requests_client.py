#!/usr/bin/env python3
"""A stream read the way Python users read one: requests with iter_lines() and its defaults.

Connects straight to the chat example (no proxy in between), publishes three small events one
at a time and measures how long each takes to come out of iter_lines(). A block-reading client
sees nothing of a close-delimited stream until 512 bytes or EOF, so each must arrive before the
next is published.

    requests_client.py URL      (URL of the chat example, ending in /)
"""
import sys
import threading
import time

import requests

LIMIT = 1.0  # seconds; a stream that works delivers in milliseconds, a buffered one never

base = sys.argv[1]
lines = []
cond = threading.Condition()


def reader():
    with requests.get(base + "listen?topic=py", stream=True, timeout=10) as r:
        assert r.status_code == 200, r.status_code
        assert r.headers["Content-Type"] == "text/event-stream", r.headers
        for line in r.iter_lines():  # defaults: chunk_size=512
            with cond:
                lines.append((time.monotonic(), line.decode()))
                cond.notify_all()
            if line == b"data: three":
                return


t = threading.Thread(target=reader, daemon=True)
t.start()
# Publish only once the stream is open (its retry: line has arrived), so nothing is missed.
deadline = time.monotonic() + 5
while time.monotonic() < deadline and not any(l.startswith("retry:") for _, l in lines):
    time.sleep(0.01)

worst = 0.0
for word in ["one", "two", "three"]:
    sent = time.monotonic()
    r = requests.post(base + "publish?topic=py", data=word, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    with cond:
        ok = cond.wait_for(lambda: any(l == "data: " + word for _, l in lines), timeout=LIMIT)
    if not ok:
        print(f"FAIL: 'data: {word}' not out of iter_lines() {LIMIT} s after its publish")
        print("lines so far:", [l for _, l in lines])
        sys.exit(1)
    got = next(at for at, l in lines if l == "data: " + word)
    worst = max(worst, got - sent)
    print(f"data: {word} after {(got - sent) * 1000:.1f} ms")
print(f"requests iter_lines(): every event within {worst * 1000:.1f} ms of its publish")
