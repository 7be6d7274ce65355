"""An alert written for each kind of channel: email, Slack, Telegram, plain text. Pure functions.

News text is untrusted: it is escaped for the channel's markup so it cannot add markup, links
or mass mentions, and it is shortened before escaping, so a cut never splits a tag or an
escape. Each channel's length limit is respected by dropping evidence, then the excerpt.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from apprise import NotifyFormat

from shared.messages import Evidence, Signal

Style = Literal["text", "email", "slack", "telegram"]

LIMITS: dict[Style, int] = {"text": 8000, "email": 50_000, "slack": 2900, "telegram": 4000}
_ICONS = {"escalation": "🔴", "ceasefire": "🕊️", "none": "·"}
_MENTION = re.compile(r"@(?=(channel|here|everyone|all)\b)", re.IGNORECASE)
_EXCERPTS = (400, 200, 0)
MAX_RELATED = 10


def style_of(url: str) -> Style:
    """The style a channel URL wants, by its scheme."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"mailto", "mailtos"}:
        return "email"
    if scheme in {"slack"}:
        return "slack"
    if scheme in {"tgram"}:
        return "telegram"
    return "text"


@dataclass(frozen=True)
class Rendered:
    """A title, a body and the apprise format of the body."""

    title: str
    body: str
    body_format: str


@dataclass(frozen=True)
class _Facts:
    title: str
    lines: list[tuple[str, str]]
    evidence: list[Evidence]
    excerpt: str
    url: str | None
    footer: str


def render_for(
    style: Style,
    signal: Signal,
    timezone: str = "UTC",
    update: str | None = None,
    related: Sequence[Signal] = (),
    outlets: int = 1,
) -> Rendered:
    """The alert for ``signal`` in ``style``, within that channel's length limit.

    ``update`` prefixes the title (for example "De-escalation update"); ``related`` are other
    reports on the same incident; ``outlets`` is how many outlets carried the story.
    """
    facts = _facts(signal, timezone, update, related, outlets)
    title = _defuse(facts.title)
    for excerpt_length in _EXCERPTS:
        for kept in range(len(facts.evidence), -1, -1):
            body = _BODIES[style](
                facts, facts.evidence[:kept], _shorten(facts.excerpt, excerpt_length)
            )
            if len(title) + len(body) + 2 <= LIMITS[style]:
                return Rendered(title, body, _FORMATS[style])
    body = _BODIES[style](facts, [], "")
    return Rendered(title[: LIMITS[style] // 4], body[: LIMITS[style] // 2], _FORMATS[style])


def _facts(
    signal: Signal, timezone: str, update: str | None, related: Sequence[Signal], outlets: int
) -> _Facts:
    report = signal.report
    severity = signal.severity
    headline = report.title or _shorten(report.text, 100)
    place = next((p.name for p in signal.places if p.admin_level > 0), None)
    where = f" · {place}" if place else ""
    title = (
        f"{_ICONS[signal.label]} {signal.label.upper()} · {severity.name.lower()} "
        f"({int(severity)}/5){where}: {headline}"
    )
    if update:
        title = f"{update}: {title}"
    lines: list[tuple[str, str]] = []
    if outlets > 1:
        lines.append(("Reported by", f"{outlets} outlets"))
    if related:
        lines.append(("Reports", str(len(related) + 1)))
        for other in related[:MAX_RELATED]:
            other_title = other.report.title or _shorten(other.report.text, 80)
            lines.append(("Also", f"{other_title} ({other.report.source})"))
    if signal.places:
        lines.append(("Places", ", ".join(f"{p.name} ({p.country})" for p in signal.places)))
    if signal.countries:
        lines.append(("Countries", ", ".join(signal.countries)))
    lines.append(
        ("Scores", f"escalation {signal.escalation:.2f} · ceasefire {signal.ceasefire:.2f}")
    )
    if len(signal.flags) > 1:
        lines.append(
            ("Also flagged", ", ".join(f"{f.kind} ({f.modality})" for f in signal.flags[1:]))
        )
    figures = [
        f"{name} at least {value:,}"
        for name, value in (
            ("killed", signal.figures.killed),
            ("injured", signal.figures.injured),
            ("displaced", signal.figures.displaced),
        )
        if value
    ]
    if figures:
        lines.append(("People", " · ".join(figures)))
    if signal.actors:
        lines.append(("Actors", ", ".join(actor.name for actor in signal.actors)))
    lines.append(("Published", _when(report.published_at, timezone, report.published_estimated)))
    lines.append(("Source", report.source))
    return _Facts(
        title=title,
        lines=lines,
        evidence=_distinct([e for e in signal.evidence if e.kind == signal.label]),
        excerpt=report.text,
        url=report.url,
        footer=f"Report {report.id} · {signal.classifier}",
    )


def _text_body(facts: _Facts, evidence: list[Evidence], excerpt: str) -> str:
    lines = [f"{label}: {_defuse(value)}" for label, value in facts.lines]
    if evidence:
        lines.append("Evidence:")
        lines.extend(f'  • "{_defuse(e.phrase)}" ({e.rule}, {e.weight:.2f})' for e in evidence)
    if excerpt:
        lines.append(_defuse(excerpt))
    if facts.url:
        lines.append(facts.url)
    lines.append(facts.footer)
    return "\n".join(lines)


def _html_body(facts: _Facts, evidence: list[Evidence], excerpt: str) -> str:
    parts = [f"<p><b>{_h(label)}:</b> {_h(value)}</p>" for label, value in facts.lines]
    if evidence:
        items = "".join(f"<li>“{_h(e.phrase)}” <i>({_h(e.rule)})</i></li>" for e in evidence)
        parts.append(f"<p><b>Evidence:</b></p><ul>{items}</ul>")
    if excerpt:
        parts.append(f"<blockquote>{_h(excerpt)}</blockquote>")
    if facts.url:
        parts.append(f'<p><a href="{_h(facts.url)}">{_h(facts.url)}</a></p>')
    parts.append(f"<p><small>{_h(facts.footer)}</small></p>")
    return "\n".join(parts)


def _telegram_body(facts: _Facts, evidence: list[Evidence], excerpt: str) -> str:
    lines = [f"<b>{_h(label)}:</b> {_h(value)}" for label, value in facts.lines]
    if evidence:
        lines.append("<b>Evidence:</b>")
        lines.extend(f"• “{_h(e.phrase)}” <i>({_h(e.rule)})</i>" for e in evidence)
    if excerpt:
        lines.append(f"<i>{_h(excerpt)}</i>")
    if facts.url:
        lines.append(f'<a href="{_h(facts.url)}">source</a>')
    lines.append(_h(facts.footer))
    return "\n".join(lines)


def _slack_body(facts: _Facts, evidence: list[Evidence], excerpt: str) -> str:
    lines = [f"*{_s(label)}:* {_s(value)}" for label, value in facts.lines]
    if evidence:
        lines.append("*Evidence:*")
        lines.extend(f"• “{_s(e.phrase)}” _({_s(e.rule)})_" for e in evidence)
    if excerpt:
        lines.append(f">{_s(excerpt)}")
    if facts.url:
        lines.append(f"<{_url(facts.url)}>")
    lines.append(_s(facts.footer))
    return "\n".join(lines)


_BODIES = {
    "text": _text_body,
    "email": _html_body,
    "telegram": _telegram_body,
    "slack": _slack_body,
}
_FORMATS: dict[Style, str] = {
    "text": NotifyFormat.TEXT,
    "email": NotifyFormat.HTML,
    "telegram": NotifyFormat.HTML,
    "slack": NotifyFormat.MARKDOWN,
}


def _defuse(text: str) -> str:
    """Mass mentions (@channel, @here, @everyone) made inert with a zero-width space."""
    return _MENTION.sub("@\u200b", text)


def _h(text: str) -> str:
    return html.escape(_defuse(text), quote=True)


def _s(text: str) -> str:
    """Slack mrkdwn with no way to form <!everyone>, <@user> or <link|label>.

    apprise escapes &, < and > for Slack but then turns <!x>, <@x> and <url|x> back into live
    mentions and links, so angle brackets in news text become look-alike quotes instead.
    """
    return _defuse(text).replace("<", "\u2039").replace(">", "\u203a")


def _url(url: str) -> str:
    """A URL safe inside Slack's <url>: no |, <, > or spaces."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def _when(moment: datetime, timezone: str, estimated: bool) -> str:
    utc = moment.strftime("%Y-%m-%d %H:%M UTC")
    local = (
        ""
        if timezone == "UTC"
        else (f" ({moment.astimezone(ZoneInfo(timezone)).strftime('%H:%M')} {timezone})")
    )
    return f"{utc}{local}{' (estimated)' if estimated else ''}"


def _shorten(text: str, limit: int) -> str:
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _distinct(evidence: list[Evidence]) -> list[Evidence]:
    seen: set[str] = set()
    distinct = []
    for item in evidence:
        if item.phrase.casefold() not in seen:
            seen.add(item.phrase.casefold())
            distinct.append(item)
    return distinct
