"""Grouping signals into incidents per subscription, on Alertmanager's model.

Signals about one situation (the incident key without its kind) that arrive within a
subscription's group wait become one alert. Later ones go out as an update after the group
interval; an incident still active (a report within two repeat intervals) is announced again
after the repeat interval; a ceasefire on
an escalating incident is a de-escalation update, and a new escalation after it reopens it.
State lives in Redis, so any notifier replica can send a due group, and each group has a
stable id, so a group resent after a crash is not delivered twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict

from shared.messages import Label, Severity, Signal
from shared.settings import Settings
from shared.streams import as_text

SEPARATOR = "\x1f"

# Take up to ARGV[2] members due by ARGV[1], pushing each to ARGV[3] so no one else takes it.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
"""

# Queue signals for their groups, each at most once per (subscription, situation).
# KEYS[1]: the due set, then per signal: incident state hash, pending list, set of ids seen.
# ARGV[1]: now, ARGV[2]: how long ids are remembered, then per signal: id, JSON, due-set
# member, group wait, group interval. Returns per signal 1 if queued, 0 if already seen.
_ADD = """
local now = tonumber(ARGV[1])
local queued = {}
for i = 0, (#KEYS - 1) / 3 - 1 do
  local state, pending, seen = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local a = 3 + 5 * i
  if redis.call('SADD', seen, ARGV[a]) == 1 then
    redis.call('EXPIRE', seen, ARGV[2])
    redis.call('RPUSH', pending, ARGV[a + 1])
    redis.call('HSET', state, 'last_signal', ARGV[1])
    local last_sent = redis.call('HGET', state, 'last_sent')
    local due = now + tonumber(ARGV[a + 3])
    if last_sent then due = math.max(now, tonumber(last_sent) + tonumber(ARGV[a + 4])) end
    -- LT: never postpone a group already due sooner, but bring a repeat forward
    redis.call('ZADD', KEYS[1], 'LT', string.format('%.17g', due), ARGV[a + 2])
    queued[#queued + 1] = 1
  else
    queued[#queued + 1] = 0
  end
end
return queued
"""


def situation_of(signal: Signal) -> str:
    """The situation a signal is about: its incident key without the kind."""
    if signal.incident_key is None:
        return f"report-{signal.id}"
    return signal.incident_key.split(":", 1)[-1]


def update_title(previous: Label | None, current: Label, repeat: bool) -> str | None:
    """The prefix of a group alert's title, from what the incident was and is now."""
    if repeat:
        return "Still active"
    if previous is None:
        return None
    if previous == "escalation" and current == "ceasefire":
        return "De-escalation update"
    if previous == "ceasefire" and current == "escalation":
        return "Reopened, fighting again"
    return "Update"


@dataclass(frozen=True)
class Pending:
    """A signal to queue for a subscription's next group, with that subscription's timing."""

    subscription: str
    signal: Signal
    group_wait_s: int
    group_interval_s: int


class _QueuedReport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    source: str


class _QueuedView(BaseModel):
    """What grouping needs of a queued signal; reading it skips validating the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    report: _QueuedReport
    label: Label
    severity: Severity


class QueuedSignals(Sequence[Signal]):
    """The distinct signals queued for a group, oldest first.

    Each signal's id, source, label and severity are read at once; the whole signal is only
    validated when it is looked at (an alert shows the lead and a few others, however many
    reports the group holds).
    """

    def __init__(self, raw: Sequence[bytes | str] = ()) -> None:
        unique: dict[str, tuple[_QueuedView, bytes | str]] = {}
        for item in raw:
            view = _QueuedView.model_validate_json(item)
            unique.setdefault(view.report.id, (view, item))
        self._items = list(unique.values())
        self._signals: dict[int, Signal] = {}

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Signal: ...

    @overload
    def __getitem__(self, index: slice) -> list[Signal]: ...

    def __getitem__(self, index: int | slice) -> Signal | list[Signal]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # negative indices, and IndexError
        if index not in self._signals:
            self._signals[index] = Signal.model_validate_json(self._items[index][1])
        return self._signals[index]

    def __iter__(self) -> Iterator[Signal]:
        return (self[i] for i in range(len(self)))

    def lead_index(self) -> int:
        """Where the signal a group alert leads with is: the most severe, then the latest."""
        return max(range(len(self)), key=lambda i: (self._items[i][0].severity, i))

    def label(self, index: int) -> Label:
        """The label of the signal at ``index``."""
        return self._items[index][0].label

    def sources(self) -> list[tuple[str, str]]:
        """Each signal's report id and source."""
        return [(view.report.id, view.report.source) for view, _ in self._items]

    def without(self, index: int) -> QueuedSignals:
        """The same signals but the one at ``index``."""
        rest = QueuedSignals()
        rest._items = self._items[:index] + self._items[index + 1 :]
        rest._signals = {
            i - (i > index): signal for i, signal in self._signals.items() if i != index
        }
        return rest


@dataclass(frozen=True)
class Group:
    """A due group: who, about what, its signals (oldest first) and the incident's past."""

    subscription: str
    situation: str
    sequence: int
    signals: QueuedSignals
    taken: int
    previous: Label | None
    last_signal_at: float

    @property
    def id(self) -> str:
        """A stable id: the same group resent after a crash has the same id."""
        return f"group-{self.situation}-{self.sequence}"


class IncidentBook:
    """Pending signals and incident state per (subscription, situation), in Redis."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.due_key = settings.key("incidents", "due")
        self._claim = client.register_script(_CLAIM)
        self._add = client.register_script(_ADD)

    def _keys(self, subscription: str, situation: str) -> tuple[str, str]:
        return (
            self.settings.key("incident", subscription, situation),
            self.settings.key("pending", subscription, situation),
        )

    def _seen_key(self, subscription: str, situation: str) -> str:
        return self.settings.key("grouped", subscription, situation)

    async def add(
        self,
        subscription: str,
        signal: Signal,
        now: float,
        group_wait_s: int,
        group_interval_s: int,
    ) -> None:
        """Queue ``signal`` for the subscription's next group about its situation."""
        await self.add_many([Pending(subscription, signal, group_wait_s, group_interval_s)], now)

    async def add_many(self, items: Sequence[Pending], now: float) -> list[bool]:
        """Queue signals for their subscriptions' next groups, atomically, in one round trip.

        A signal already queued for a subscription's incident (a redelivery) is not queued
        again, so it never comes back as an update once its group has gone out. Returns,
        for each item, whether it was queued now.
        """
        if not items:
            return []
        keys = [self.due_key]
        args: list[str | int | float] = [repr(now), self.settings.dedup_window_s]
        dumped: dict[int, str] = {}  # a signal grouped for several subscriptions, once
        for item in items:
            situation = situation_of(item.signal)
            state_key, pending_key = self._keys(item.subscription, situation)
            keys += [state_key, pending_key, self._seen_key(item.subscription, situation)]
            signal_json = dumped.get(id(item.signal))
            if signal_json is None:
                signal_json = dumped[id(item.signal)] = item.signal.model_dump_json()
            args += [
                item.signal.id,
                signal_json,
                f"{item.subscription}{SEPARATOR}{situation}",
                item.group_wait_s,
                item.group_interval_s,
            ]
        queued = await self._add(keys=keys, args=args)
        return [bool(flag) for flag in queued]

    async def was_escalating(self, subscription: str, signal: Signal) -> bool:
        """Whether the subscription was last told this situation was escalating."""
        return (await self.were_escalating([(subscription, signal)]))[0]

    async def were_escalating(self, asked: Sequence[tuple[str, Signal]]) -> list[bool]:
        """:meth:`was_escalating` for many (subscription, signal) pairs, in one round trip."""
        if not asked:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for subscription, signal in asked:
                pipe.hget(self._keys(subscription, situation_of(signal))[0], "last_label")
            labels = await pipe.execute()
        return [label is not None and as_text(label) == "escalation" for label in labels]

    async def take_due(self, now: float, lease_s: float, limit: int = 20) -> list[Group]:
        """Claim the groups due by ``now`` for ``lease_s`` seconds and read them."""
        members = await self._claim(keys=[self.due_key], args=[now, limit, now + lease_s])
        groups = []
        for member in members:
            subscription, situation = as_text(member).split(SEPARATOR, 1)
            groups.append(await self._read(subscription, situation))
        return groups

    async def _read(self, subscription: str, situation: str) -> Group:
        state_key, pending_key = self._keys(subscription, situation)
        state = {as_text(k): as_text(v) for k, v in (await self.client.hgetall(state_key)).items()}
        raw = await self.client.lrange(pending_key, 0, -1)
        previous = state.get("last_label")
        return Group(
            subscription=subscription,
            situation=situation,
            sequence=int(state.get("sequence", 0)),
            signals=QueuedSignals(raw),
            taken=len(raw),
            previous=previous if previous in ("escalation", "ceasefire") else None,  # type: ignore[arg-type]
            last_signal_at=float(state.get("last_signal", 0)),
        )

    async def sent(
        self, group: Group, label: Label, now: float, group_interval_s: int, repeat_s: int
    ) -> None:
        """Record a delivered group and schedule what comes next for its incident."""
        state_key, pending_key = self._keys(group.subscription, group.situation)
        member = f"{group.subscription}{SEPARATOR}{group.situation}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.ltrim(pending_key, group.taken, -1)
            pipe.hset(
                state_key,
                mapping={"sequence": group.sequence + 1, "last_label": label, "last_sent": now},
            )
            pipe.llen(pending_key)
            _, _, waiting = await pipe.execute()
        next_due = now + (group_interval_s if waiting else repeat_s)
        await self.client.zadd(self.due_key, {member: next_due})
        await self.client.expire(state_key, max(repeat_s * 3, self.settings.dedup_window_s))

    async def forget(self, group: Group) -> None:
        """Drop an incident that is over (or whose subscription is gone)."""
        _, pending_key = self._keys(group.subscription, group.situation)
        member = f"{group.subscription}{SEPARATOR}{group.situation}"
        await self.client.zrem(self.due_key, member)
        await self.client.delete(pending_key)

    async def last_announced(self, group: Group) -> Signal | None:
        """The signal the last alert about this incident led with (for re-announcing)."""
        state_key, _ = self._keys(group.subscription, group.situation)
        data = await self.client.hget(state_key, "last_json")
        return None if data is None else Signal.model_validate_json(data)

    async def remember(self, group: Group, lead: Signal) -> None:
        """Keep the lead signal of the alert just sent, for re-announcing it."""
        state_key, _ = self._keys(group.subscription, group.situation)
        await self.client.hset(state_key, "last_json", lead.model_dump_json())
