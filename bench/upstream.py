"""A fast local HTTPS upstream for the benchmark, run as its own process.

    python bench/upstream.py CERT KEY PORT [ARRIVALS]

With ARRIVALS, every request that is not a GET appends a line `<time.monotonic_ns()> <method>
<path>` to that file as it arrives: CLOCK_MONOTONIC is one clock for every process on the
machine, so a benchmark can time "approved -> upstream received it" across processes.
"""

from __future__ import annotations

import sys
import time
from typing import IO

import uvicorn

BODY = b'{"ticket": {"id": 1, "status": "open", "subject": "benchmark"}}'
ARRIVALS: IO[str] | None = None


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Bare ASGI: answers every request at once, so the proxy is what is measured."""
    if scope["type"] != "http":
        return
    if ARRIVALS is not None and scope["method"] != "GET":
        ARRIVALS.write(f"{time.monotonic_ns()} {scope['method']} {scope['path']}\n")
        ARRIVALS.flush()
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4:
        ARRIVALS = open(sys.argv[4], "a")  # kept open for the process's life
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                ssl_certfile=cert, ssl_keyfile=key, lifespan="off")
