"""Work on a large body runs in a thread, so one big write does not stall every agent's reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# Bodies above this are decoded, parsed, diffed, hashed and sealed in a thread; smaller ones
# cost less inline than a thread hop.
OFF_LOOP_BYTES = 256 * 1024


async def off_loop[T](large: bool, work: Callable[..., T], *args: Any) -> T:
    if large:
        return await asyncio.to_thread(work, *args)
    return work(*args)
