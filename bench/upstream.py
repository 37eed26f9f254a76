"""A fast local HTTPS upstream for the benchmark, run as its own process.

    python bench/upstream.py CERT KEY PORT
"""

from __future__ import annotations

import sys

import uvicorn

BODY = b'{"ticket": {"id": 1, "status": "open", "subject": "benchmark"}}'


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Bare ASGI: answers every request at once, so the proxy is what is measured."""
    if scope["type"] != "http":
        return
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
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                ssl_certfile=cert, ssl_keyfile=key, lifespan="off")
