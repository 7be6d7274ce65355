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

from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.messages import Label, Signal
from shared.settings import Settings
from shared.streams import as_text

SEPARATOR = "\x1f"

# Take up to ARGV[2] members due by ARGV[1], pushing each to ARGV[3] so no one else takes it.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
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
class Group:
    """A due group: who, about what, its signals (oldest first) and the incident's past."""

    subscription: str
    situation: str
    sequence: int
    signals: list[Signal]
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

    def _keys(self, subscription: str, situation: str) -> tuple[str, str]:
        return (
            self.settings.key("incident", subscription, situation),
            self.settings.key("pending", subscription, situation),
        )

    async def add(
        self,
        subscription: str,
        signal: Signal,
        now: float,
        group_wait_s: int,
        group_interval_s: int,
    ) -> None:
        """Queue ``signal`` for the subscription's next group about its situation."""
        situation = situation_of(signal)
        state_key, pending_key = self._keys(subscription, situation)
        last_sent = await self.client.hget(state_key, "last_sent")
        due = (
            now + group_wait_s
            if last_sent is None
            else max(now, float(last_sent) + group_interval_s)
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(pending_key, signal.model_dump_json())
            pipe.hset(state_key, "last_signal", now)
            # LT: never postpone a group already due sooner, but bring a repeat forward
            pipe.zadd(self.due_key, {f"{subscription}{SEPARATOR}{situation}": due}, lt=True)
            await pipe.execute()

    async def was_escalating(self, subscription: str, signal: Signal) -> bool:
        """Whether the subscription was last told this situation was escalating."""
        state_key, _ = self._keys(subscription, situation_of(signal))
        label = await self.client.hget(state_key, "last_label")
        return label is not None and as_text(label) == "escalation"

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
        unique: dict[str, Signal] = {}
        for item in raw:
            signal = Signal.model_validate_json(item)
            unique.setdefault(signal.id, signal)
        previous = state.get("last_label")
        return Group(
            subscription=subscription,
            situation=situation,
            sequence=int(state.get("sequence", 0)),
            signals=list(unique.values()),
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


def lead_signal(signals: list[Signal]) -> Signal:
    """The signal a group alert leads with: the most severe, then the latest."""
    return max(enumerate(signals), key=lambda pair: (pair[1].severity, pair[0]))[1]
