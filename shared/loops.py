"""Background loops that stop when asked, instead of being cancelled mid-command.

redis-py can turn a cancellation that lands while a command waits for its reply into a
``ConnectionError`` raised later (seen with redis-py 5.2 to 8.1: the task stays "cancelling" and
goes on). A loop that survives Redis errors and is stopped with ``Task.cancel()`` may therefore
never stop: it keeps running, holds claims, and hangs shutdown. A :class:`Loop` is asked to stop
instead; it finishes the round it is in and ends. Only a round still running after a grace
period is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shared.logs import get_logger

log = get_logger(__name__)

Round = Callable[[], Awaitable[float]]
"""One round of a loop; it returns how many seconds to wait before the next."""

_running: set[asyncio.Task[None]] = set()  # strong references, so no pending loop is collected


class Loop:
    """Run ``round`` again and again, ``first_delay_s`` after start and then as it asks."""

    def __init__(self, name: str, round: Round, *, first_delay_s: float = 0.0) -> None:
        self.name = name
        self._round = round
        self._first_delay_s = first_delay_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Loop:
        """Start the loop in the running event loop; return it."""
        self._task = asyncio.create_task(self._run(), name=self.name)
        _running.add(self._task)
        self._task.add_done_callback(_running.discard)
        return self

    async def stop(self, grace_s: float = 5.0) -> None:
        """Ask the loop to stop and wait for its current round, at most ``grace_s`` seconds."""
        self._stopping.set()
        task = self._task
        if task is None or task.done():
            return
        _, pending = await asyncio.wait({task}, timeout=grace_s)
        if pending:
            log.warning("a background loop did not stop in time; cancelling it", loop=self.name)
            task.cancel()
            await asyncio.wait({task}, timeout=grace_s)

    async def _run(self) -> None:
        delay = self._first_delay_s
        while not await self._stopped_within(delay):
            try:
                delay = await self._round()
            except Exception as error:  # a loop outlives a bad round, and says so
                log.warning("background loop round failed", loop=self.name, error=repr(error))
                delay = max(delay, 1.0)

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()
