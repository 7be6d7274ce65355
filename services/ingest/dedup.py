"""Exact-duplicate detection shared by every ingest replica, kept in Redis."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from services.ingest.normalize import text_fingerprint, url_fingerprint
from shared.messages import Report
from shared.settings import Settings
from shared.streams import as_text

# Claims for several reports, in order, atomically. ARGV: the window, then a token and a key
# count per report; KEYS: each report's keys in turn. A report whose keys another token owns
# gets that owner; otherwise its token owns them all from then on, so a later report of the
# same call with one of those keys is a duplicate of it. Returns one owner ('' when the claim
# succeeded) per report.
_CLAIM = """
local owners, first = {}, 1
for i = 2, #ARGV, 2 do
  local token, last = ARGV[i], first + tonumber(ARGV[i + 1]) - 1
  local owner = ''
  for k = first, last do
    local current = redis.call('GET', KEYS[k])
    if current and current ~= token then owner = current; break end
  end
  if owner == '' then
    for k = first, last do redis.call('SET', KEYS[k], token, 'EX', ARGV[1]) end
  end
  owners[#owners + 1] = owner
  first = last + 1
end
return owners
"""


# Delete only the keys each token owns. ARGV: a token and a key count per report.
_RELEASE = """
local first = 1
for i = 1, #ARGV, 2 do
  local token, last = ARGV[i], first + tonumber(ARGV[i + 1]) - 1
  for k = first, last do
    if redis.call('GET', KEYS[k]) == token then redis.call('DEL', KEYS[k]) end
  end
  first = last + 1
end
return true
"""


class Deduplicator:
    """Remembers each report's URL and text for the dedup window."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._settings = settings

    def keys(self, report: Report) -> list[str]:
        """The Redis keys that identify ``report`` as already seen."""
        keys = [self._settings.key("seen", "text", text_fingerprint(report.text))]
        if report.url:
            keys.insert(0, self._settings.key("seen", "url", url_fingerprint(report.url)))
        return keys

    async def first_seen_many(
        self, reports: Sequence[Report], tokens: Sequence[str]
    ) -> list[str | None]:
        """Claim each report for its token, in order, in one atomic round trip.

        Returns, per report, the owner's token when it is a duplicate (of an earlier claim or
        of a report before it in ``reports``), else None. A token claiming again succeeds, so
        a redelivered entry is not mistaken for a duplicate of itself.
        """
        if not reports:
            return []
        keys, args = self._layout(reports, tokens)
        owners = await self._claim(keys=keys, args=[self._settings.dedup_window_s, *args])
        return [as_text(owner) or None for owner in owners]

    async def release_many(self, reports: Sequence[Report], tokens: Sequence[str]) -> None:
        """Forget each report its token claimed, in one round trip."""
        if reports:
            keys, args = self._layout(reports, tokens)
            await self._release(keys=keys, args=args)

    def _layout(
        self, reports: Sequence[Report], tokens: Sequence[str]
    ) -> tuple[list[str], list[str | int]]:
        keys: list[str] = []
        args: list[str | int] = []
        for report, token in zip(reports, tokens, strict=True):
            own = self.keys(report)
            keys.extend(own)
            args.extend((token, len(own)))
        return keys, args
