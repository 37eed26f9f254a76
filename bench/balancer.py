"""A small TCP round-robin load balancer, for machines without HAProxy: per connection, the
next backend in turn; bytes are copied both ways until either side closes.

    python bench/balancer.py LISTEN_PORT=BACKEND_PORT[,BACKEND_PORT...] ...

Loopback only. It is Python on the same cores as what it balances, so its CPU is counted apart
(bench/replicas.py charges it to the balanced setups).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Iterator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: int, backends: list[int]) -> asyncio.Server:
    turn: Iterator[int] = itertools.cycle(backends)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", listen)


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        listen, _, backends = spec.partition("=")
        servers.append(await serve(int(listen), [int(port) for port in backends.split(",")]))
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
