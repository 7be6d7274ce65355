"""Near-duplicates: the same story republished with small edits, found by SimHash.

Each report gets a 64-bit SimHash of its words. Stories within ``MAX_DISTANCE`` bits of each
other are the same story (edits of a sentence or a dateline move a wire story by 3-4 bits;
different stories differ by 18 or more).

Stories are indexed in Redis by three slices of their hash (22, 21 and 21 bits). Two hashes
within five bits of each other differ by at most one bit in one of the slices (were all three
two bits apart, the hashes would be six apart), so a lookup reads the three slices and every
slice one bit away: 67 small Redis strings, where the candidates are. Slices that wide keep
the candidates few even though news vocabulary biases the bits of a SimHash (six 11-bit
bands, the layout before, gave hundreds of candidates per report once 20,000 stories were
indexed).

Two layouts came before: the same slices kept in hashes (one HGETALL per slice value, which
cost Redis about 75 us a report) and the six bands. Where either has left keys, lookups also
read them for one dedup window after the first start of this layout (see
:meth:`StoryIndex.prepare`).

A batch of reports is looked up with one MGET of every report's 67 keys, named in Python so
that Redis, which every ingest replica shares, only reads them (while the layouts before may
still hold stories, one script call reads them too). Each report is also compared with the
new stories before it in the same batch, so two copies of a story read together still come
out as one story.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from shared.messages import Report
from shared.settings import Settings

MAX_DISTANCE = 5
MIN_WORDS = 20
NUMBER_WEIGHT = 3
SLICE_BITS = (22, 21, 21)
"""The slices' widths: at most 24 bits each, since keys write a slice as six hex digits."""
_PROBE_MASKS = tuple((0, *(1 << bit for bit in range(width))) for width in SLICE_BITS)
"""Per slice, what its value is XORed with to name the keys a lookup reads: itself, then
each value one bit away."""
BAND_BITS = (11, 11, 11, 11, 10, 10)
"""Six bands of a hash: the layout before, looked up (never written) for one dedup window,
and the index of a batch's own new stories."""
_WORD = re.compile(r"\w+")
_GLOB = re.compile(r"[*?\[\]\\]")  # special in a SCAN pattern
_BITS = 64


# A word's hash bits as 64 lanes of ``_LANE`` bits, one per bit: adding such numbers adds the
# per-bit weights of all the words at once, as long as no lane reaches 2**(_LANE - 1)
# (texts of fewer than 700 million words).
_LANE = 32
_LANE_BYTES = _LANE // 8
_EVERY_LANE = sum(1 << (_LANE * bit) for bit in range(_BITS))
_HIGH_BIT = bytes(0x31 if byte >= 0x80 else 0x30 for byte in range(256))  # b"1" / b"0"


@lru_cache(maxsize=1 << 14)
def _word_lanes(word: str) -> tuple[int, int]:
    """A word's weight and its hash bits as lanes, times the weight (news vocabulary
    repeats, so this is cached)."""
    value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
    weight = NUMBER_WEIGHT if any(char.isdigit() for char in word) else 1
    lanes = sum(1 << (_LANE * bit) for bit in range(_BITS) if value >> bit & 1)
    return lanes * weight, weight


def simhash(text: str) -> int:
    """A 64-bit SimHash of the text's words (case and punctuation ignored).

    Numbers weigh three times a word: "two soldiers killed" and "twelve soldiers killed"
    are different news. Bit ``b`` is set when the words whose hash has bit ``b`` set weigh
    more than half of all the words.
    """
    return _simhash(_WORD.findall(text.casefold()))


def comparable_simhash(text: str) -> int | None:
    """The text's :func:`simhash`, or None when it has too few words to compare (its words
    split once for both)."""
    words = _WORD.findall(text.casefold())
    return _simhash(words) if len(words) >= MIN_WORDS else None


def _simhash(words: Sequence[str]) -> int:
    """The SimHash of case-folded words.

    The 64 per-bit weights are summed as lanes of one integer; adding ``2**31 - 1 - half``
    to every lane then sets a lane's top bit exactly when its weight exceeds half the total.
    """
    lanes = total = 0
    for word in words:
        word_lanes, weight = _word_lanes(word)
        lanes += word_lanes
        total += weight
    lanes += ((1 << (_LANE - 1)) - 1 - total // 2) * _EVERY_LANE
    top_bytes = lanes.to_bytes(_BITS * _LANE_BYTES, "little")[_LANE_BYTES - 1 :: _LANE_BYTES]
    return int(top_bytes.translate(_HIGH_BIT)[::-1], 2)


def long_enough(text: str) -> bool:
    """Whether a text has words enough to compare by SimHash."""
    return len(_WORD.findall(text)) >= MIN_WORDS


def distance(a: int, b: int) -> int:
    """How many bits two hashes differ in."""
    return (a ^ b).bit_count()


def slices(value: int, widths: Sequence[int] = SLICE_BITS) -> list[int]:
    """The slices of a hash that index it, lowest bits first."""
    parts, shift = [], 0
    for width in widths:
        parts.append((value >> shift) & ((1 << width) - 1))
        shift += width
    return parts


def bands(value: int) -> list[int]:
    """The six bands of a hash in the layout before."""
    return slices(value, BAND_BITS)


def slice_key(settings: Settings, number: int, part: int) -> str:
    """The Redis string of the stories whose slice ``number`` is ``part``, "value id;" each
    (as the lookup script and :meth:`StoryIndex.probe_keys` name it: they must agree)."""
    return settings.key("story-slices", str(number), f"{part:06x}")


# The stories indexed under each report's slices, and the slices one bit away from them, as
# one reply element per report: "value id;value id;..." (empty items between ';' are
# skipped). ARGV: the key prefixes of the slices, of the slice hashes before and of the bands
# before, the key saying since when this layout is written, the time now, the window, how
# many slices and each slice's width, how many bands, then per report its slices and its
# bands. The layouts before are read while the marker is missing (nobody has looked yet) or
# younger than the window. The script names the keys it reads (Flashpoint uses a standalone
# Redis); :meth:`StoryIndex.probe_keys` names the same keys in Python.
_CANDIDATES = """
local slices, hashes, bands, marker = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, window, count = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local widths = {}
for s = 1, count do widths[s] = tonumber(ARGV[7 + s]) end
local band_count = tonumber(ARGV[8 + count])
local since = tonumber(redis.call('GET', marker))
local before = since == nil or (since > 0 and now - since < window)
local per, out = count + band_count, {}
-- Building the keys is most of what a lookup costs. A slice (24 bits at most) is written as
-- three bytes of two hex digits each, taken from a table, so flipping one bit changes one of
-- them: cheaper than a string.format per key (the lookup of 500 bench reports costs Redis
-- 50 us a report instead of 57).
local bxor, band, rshift = bit.bxor, bit.band, bit.rshift
local hex, masks = {}, {}
for v = 0, 255 do hex[v] = string.format('%02x', v) end
for b = 0, 7 do masks[b] = bit.lshift(1, b) end
local function prefixes(prefix)
  local found = {}
  for s = 1, count do found[s] = prefix .. ':' .. (s - 1) .. ':' end
  return found
end
local slice_keys, hash_keys = prefixes(slices), prefixes(hashes)
local function keys_of(i, layout)
  local keys, k = {}, 0
  for s = 1, count do
    local part, key = tonumber(ARGV[i + s - 1]), layout[s]
    local byte2, byte1, byte0 = rshift(part, 16), band(rshift(part, 8), 255), band(part, 255)
    local hex2, hex1, hex0 = hex[byte2], hex[byte1], hex[byte0]
    k = k + 1
    keys[k] = key .. hex2 .. hex1 .. hex0
    for b = 0, widths[s] - 1 do
      k = k + 1
      if b < 8 then
        keys[k] = key .. hex2 .. hex1 .. hex[bxor(byte0, masks[b])]
      elseif b < 16 then
        keys[k] = key .. hex2 .. hex[bxor(byte1, masks[b - 8])] .. hex0
      else
        keys[k] = key .. hex[bxor(byte2, masks[b - 16])] .. hex1 .. hex0
      end
    end
  end
  return keys
end
local function gather(found, key)
  local entries = redis.call('HGETALL', key)
  for j = 1, #entries, 2 do found[#found + 1] = entries[j + 1] .. ' ' .. entries[j] end
end
for i = 9 + count, #ARGV, per do
  local found = {}
  for _, stories in ipairs(redis.call('MGET', unpack(keys_of(i, slice_keys)))) do
    if stories then found[#found + 1] = stories end
  end
  if before then
    for _, key in ipairs(keys_of(i, hash_keys)) do gather(found, key) end
    for band = 1, band_count do
      local part = tonumber(ARGV[i + count + band - 1])
      gather(found, bands .. ':' .. (band - 1) .. ':' .. string.format('%04x', part))
    end
  end
  out[#out + 1] = table.concat(found, ';')
end
return out
"""

# Index stories under their slices for the window. ARGV: the window, how many slices, then
# per story its id and SimHash; KEYS: each story's slice keys in turn. A story already in a
# slice's string (a redelivery) is not added again.
_INDEX = """
local window, count, first = ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV, 2 do
  local entry = ARGV[i + 1] .. ' ' .. ARGV[i] .. ';'
  for k = first + 1, first + count do
    local stories = redis.call('GET', KEYS[k])
    if not stories or not string.find(stories, entry, 1, true) then
      redis.call('APPEND', KEYS[k], entry)
    end
    redis.call('EXPIRE', KEYS[k], window)
  end
  first = first + count
end
return #KEYS
"""


@dataclass(frozen=True)
class Lookup:
    """What the index says about one report of a batch."""

    simhash: int | None
    """The report's SimHash, or None when its text is too short to compare."""
    story: str | None
    """The id of the earlier story it is a near-duplicate of, if any."""
    in_batch: bool = False
    """Whether that story is an earlier report of the same batch (not indexed yet)."""


class BatchStories:
    """The new stories of one batch, found by band: two hashes within ``MAX_DISTANCE`` bits
    agree on at least one of the six bands of ``BAND_BITS`` (the differing bits fall in five
    bands at most), so only stories sharing a band are compared."""

    def __init__(self) -> None:
        self._stories: list[tuple[str, int]] = []
        self._by_band: dict[tuple[int, int], list[int]] = {}

    def add(self, story_id: str, value: int) -> None:
        """Index a new story of the batch."""
        position = len(self._stories)
        self._stories.append((story_id, value))
        for band, part in enumerate(bands(value)):
            self._by_band.setdefault((band, part), []).append(position)

    def nearest(self, report_id: str, value: int) -> str | None:
        """The earliest story added within ``MAX_DISTANCE`` of ``value``, other than the
        report itself."""
        candidates: set[int] = set()
        for band, part in enumerate(bands(value)):
            candidates.update(self._by_band.get((band, part), ()))
        for position in sorted(candidates):
            story_id, story_value = self._stories[position]
            if story_id != report_id and distance(value, story_value) <= MAX_DISTANCE:
                return story_id
        return None


class StoryIndex:
    """Stories seen in the dedup window, by SimHash slice, with their corroborating sources.

    The index is kept in Redis strings, one per slice value, of "SimHash id;" entries (the
    SimHash in decimal). A batch is looked up with one MGET (one script call until
    :meth:`prepare` has run, and while the layouts before are read) and indexed with one
    script call: redis-py spends more time parsing a reply than Redis takes to answer it, so
    a pipeline of one command per key would cost far more.
    Each addition renews its string's expiry, so a story outlives the window while stories
    keep landing in the same slice value (with slices this wide, rarely).

    Until one dedup window has passed since this layout was first started on a Redis that
    held the layouts before, the lookup also reads them (see :meth:`prepare`), so
    near-duplicates of stories published before the upgrade are found.
    """

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._candidates = client.register_script(_CANDIDATES)
        self._index = client.register_script(_INDEX)
        self._since_key = settings.key("story-slices", "since")
        self._probe_formats = [
            settings.key("story-slices", str(n), "").replace("%", "%%") + "%06x"
            for n in range(len(SLICE_BITS))
        ]
        self._layouts_before_until: float | None = None

    async def prepare(self) -> None:
        """Decide, once per Redis, whether lookups must also read the layouts before.

        The first start of this layout looks for keys of the layouts before (a SCAN of the
        keys under the prefix, once). If there are any, lookups read them too for one dedup
        window from now, by when they have expired; if not, never. Until this has run,
        lookups read them. Once they need not, lookups name their keys in Python and read
        them with one MGET instead of a script call.
        """
        since = await self.client.get(self._since_key)
        if since is None:
            before = False
            for layout in ("story-index", "simhash"):
                pattern = _GLOB.sub(r"\\\g<0>", self.settings.key(layout)) + ":*"
                async for _ in self.client.scan_iter(match=pattern, count=1000):
                    before = True
                    break
                if before:
                    break
            marker = repr(time.time()) if before else "0"
            await self.client.set(self._since_key, marker, nx=True)
            since = await self.client.get(self._since_key)
        started = float(since or 0)
        self._layouts_before_until = started + self.settings.dedup_window_s if started else 0.0

    def reads_layouts_before(self, now: float) -> bool:
        """Whether a lookup at ``now`` runs the script, which reads the layouts before while
        the marker says so: until :meth:`prepare` has run, and for one window after this
        layout first started on a Redis that held them."""
        until = self._layouts_before_until
        return until is None or now < until

    def slice_keys(self, value: int) -> list[str]:
        """The Redis strings that index a SimHash, one per slice."""
        return [slice_key(self.settings, n, part) for n, part in enumerate(slices(value))]

    def probe_keys(self, value: int) -> list[str]:
        """The Redis strings a lookup of a SimHash reads: per slice, its own and each one a
        bit away (67)."""
        keys: list[str] = []
        for key_format, part, masks in zip(
            self._probe_formats, slices(value), _PROBE_MASKS, strict=True
        ):
            keys += [key_format % (part ^ mask) for mask in masks]
        return keys

    async def lookup(self, reports: Sequence[Report]) -> list[Lookup]:
        """For each report, in order, the earlier story it is a near-duplicate of, if any.

        Earlier means indexed in Redis, or a report before it in ``reports`` that is a story
        of its own (what processing the reports one at a time, indexing each new story before
        the next, would find); an indexed story is preferred. One round trip for the batch.
        Texts under ``MIN_WORDS`` words have too few words for SimHash to tell stories apart,
        so they are never merged.
        """
        values = [comparable_simhash(r.text) for r in reports]
        indexed = iter(
            await self.nearest(
                [(r.id, v) for r, v in zip(reports, values, strict=True) if v is not None]
            )
        )
        lookups: list[Lookup] = []
        batch_stories = BatchStories()
        for report, value in zip(reports, values, strict=True):
            if value is None:
                lookups.append(Lookup(None, None))
                continue
            story = next(indexed)
            if story is not None:
                lookups.append(Lookup(value, story))
                continue
            story = batch_stories.nearest(report.id, value)
            lookups.append(Lookup(value, story, in_batch=story is not None))
            if story is None:
                batch_stories.add(report.id, value)
        return lookups

    async def nearest(self, hashes: Sequence[tuple[str, int]]) -> list[str | None]:
        """For each (report id, SimHash), the indexed story within ``MAX_DISTANCE``, if any
        (never the report itself), in one round trip."""
        if not hashes:
            return []
        now = time.time()
        if self.reads_layouts_before(now):
            found = await self._read_with_layouts_before(hashes, now)
        else:
            found = await self._read(hashes)
        return [
            _nearest(report_id, value, stored)
            for (report_id, value), stored in zip(hashes, found, strict=True)
        ]

    async def _read(self, hashes: Sequence[tuple[str, int]]) -> list[list[bytes | str]]:
        """For each SimHash, the strings its 67 slice keys hold (most hold none), with one
        MGET."""
        keys = [key for _, value in hashes for key in self.probe_keys(value)]
        per = len(keys) // len(hashes)
        found: list[list[bytes | str]] = [[] for _ in hashes]
        for at, stories in enumerate(await self.client.mget(keys)):
            if stories:
                found[at // per].append(stories)
        return found

    async def _read_with_layouts_before(
        self, hashes: Sequence[tuple[str, int]], now: float
    ) -> list[list[bytes | str]]:
        """For each SimHash, its candidates in this layout and, while the marker says so, in
        the layouts before, with one script call (see :meth:`prepare`)."""
        args: list[str | int | float] = [
            self.settings.key("story-slices"),
            self.settings.key("story-index"),
            self.settings.key("simhash"),
            self._since_key,
            now,
            self.settings.dedup_window_s,
            len(SLICE_BITS),
            *SLICE_BITS,
            len(BAND_BITS),
        ]
        for _, value in hashes:
            args.extend(slices(value))
            args.extend(bands(value))
        return [[candidates] for candidates in await self._candidates(keys=[], args=args)]

    async def add(self, stories: Sequence[tuple[str, int]]) -> None:
        """Index new stories, each (id, SimHash), in one round trip."""
        if not stories:
            return
        keys: list[str] = []
        args: list[str | int] = [self.settings.dedup_window_s, len(SLICE_BITS)]
        for story_id, value in stories:
            keys.extend(self.slice_keys(value))
            args.extend((story_id, str(value)))
        await self._index(keys=keys, args=args)

    def corroborate(self, pipe: Pipeline, story_id: str, report: Report) -> int:
        """Queue on ``pipe`` recording ``report`` as another outlet carrying the story.

        Returns the position in the pipeline's results of how many outlets carry it.
        """
        key = sources_key(self.settings, story_id)
        pipe.hset(key, report.source, report.url or report.id)
        pipe.expire(key, self.settings.dedup_window_s)
        pipe.hlen(key)
        return len(pipe) - 1


def _nearest(report_id: str, value: int, candidates: Iterable[bytes | str]) -> str | None:
    """The first indexed story within ``MAX_DISTANCE`` of ``value`` (never the report itself).

    ``candidates`` are strings of "value id;value id;..." entries.
    """
    for stories in candidates:
        text = stories.decode() if isinstance(stories, bytes) else stories
        for candidate in text.split(";"):
            if not candidate:
                continue
            stored, _, story_id = candidate.partition(" ")
            if (value ^ int(stored)).bit_count() <= MAX_DISTANCE and story_id != report_id:
                return story_id
    return None


def sources_key(settings: Settings, story_id: str) -> str:
    """The Redis hash of the other outlets that carried a story."""
    return settings.key("story", story_id, "sources")
