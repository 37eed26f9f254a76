"""A lean HTTP/1.1 load client (asyncio streams, CONNECT + TLS): cheap enough per request that
the proxy, not the client, is what a 2-core benchmark measures. Run as its own process:

    python bench/client.py URL PROXY|- CAFILE CLIENTS SECONDS  -> one JSON line of latencies
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from urllib.parse import urlsplit


async def _connect(url: str, proxy: str | None,
                   trust: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    target = urlsplit(url)
    host, port = target.hostname or "", target.port or 443
    if proxy is None:
        return await asyncio.open_connection(host, port, ssl=trust, server_hostname=host)
    via = urlsplit(proxy)
    reader, writer = await asyncio.open_connection(via.hostname, via.port)
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 200" not in status.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"CONNECT refused: {status[:80]!r}")
    await writer.start_tls(trust, server_hostname=host)
    return reader, writer


async def _worker(url: str, proxy: str | None, trust: ssl.SSLContext, stop: float,
                  latencies: list[float]) -> int:
    target = urlsplit(url)
    request = (f"GET {target.path or '/'} HTTP/1.1\r\nHost: {target.hostname}\r\n"
               "Accept: application/json\r\n\r\n").encode()
    reader, writer = await _connect(url, proxy, trust)
    errors = 0
    while time.perf_counter() < stop:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            errors += 1
        latencies.append(time.perf_counter() - started)
    writer.close()
    return errors


async def run(url: str, proxy: str | None, cafile: str, clients: int,
              seconds: float) -> dict[str, object]:
    trust = ssl.create_default_context(cafile=cafile)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    began = time.perf_counter()
    errors = await asyncio.gather(*(_worker(url, proxy, trust, stop, latencies)
                                    for _ in range(clients)))
    return {"elapsed": time.perf_counter() - began, "latencies": latencies,
            "errors": sum(errors)}


if __name__ == "__main__":
    url, proxy, cafile, clients, seconds = sys.argv[1:6]
    print(json.dumps(asyncio.run(run(url, None if proxy == "-" else proxy, cafile, int(clients),
                                     float(seconds)))))
