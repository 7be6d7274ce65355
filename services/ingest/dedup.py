"""Exact-duplicate detection shared by every ingest replica, kept in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.ingest.normalize import text_fingerprint, url_fingerprint
from shared.messages import Report
from shared.settings import Settings

# Atomically: if any key is owned by another token, return that owner; else own them all.
_CLAIM = """
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner and owner ~= ARGV[1] then return owner end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return false
"""


# Delete only the keys ``token`` owns.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
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

    async def first_seen(self, report: Report, token: str) -> str | None:
        """Claim ``report`` for ``token``; return the earlier owner's token if it is a duplicate.

        Claiming again with the same token succeeds, so a redelivered entry is not mistaken
        for a duplicate of itself.
        """
        owner = await self._claim(
            keys=self.keys(report), args=[token, self._settings.dedup_window_s]
        )
        if owner is None:
            return None
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    async def release(self, report: Report, token: str) -> None:
        """Forget ``report`` if ``token`` claimed it (its publication failed)."""
        await self._release(keys=self.keys(report), args=[token])
