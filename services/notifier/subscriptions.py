"""Subscriptions: who wants which alerts, where, and how often. Pure models and functions."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.notifier.channels import Channel, ChannelError
from shared.messages import Score, Severity, Signal, SignalKind

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class Filters(BaseModel):
    """Which signals a subscription wants; empty sets mean "any"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: frozenset[SignalKind] = frozenset({"escalation", "ceasefire"})
    min_severity: Severity = Severity.INFO
    min_confidence: Score = Field(0.0, description="Least score of the signal's label.")
    countries: frozenset[str] = frozenset()
    places: frozenset[str] = Field(frozenset(), description="Place or province names.")
    keywords: tuple[str, ...] = Field((), description="Any of these words in the report.")

    @field_validator("min_severity", mode="before")
    @classmethod
    def _severity_by_name(cls, value: object) -> object:
        if isinstance(value, str) and not value.isdigit():
            try:
                return Severity[value.upper()]
            except KeyError:
                names = ", ".join(s.name.lower() for s in Severity)
                msg = f"unknown severity {value!r}; use one of {names} or 1-5"
                raise ValueError(msg) from None
        return value

    @field_validator("countries")
    @classmethod
    def _known_countries(cls, codes: frozenset[str]) -> frozenset[str]:
        upper = frozenset(code.upper() for code in codes)
        for code in upper:
            if pycountry.countries.get(alpha_2=code) is None:
                msg = f"unknown country code {code!r}; use ISO 3166 alpha-2 such as TH or KH"
                raise ValueError(msg)
        return upper


class QuietHours(BaseModel):
    """A daily window, in the subscriber's time zone, when only critical alerts go out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """Whether ``moment`` falls inside the window (which may cross midnight)."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class DeliveryOptions(BaseModel):
    """How and how often a subscription is told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_wait_s: int = Field(30, ge=0, le=3600)
    group_interval_s: int = Field(300, ge=0, le=86_400)
    repeat_interval_s: int = Field(4 * 3600, ge=60, le=7 * 86_400)
    quiet_hours: QuietHours | None = None
    max_per_hour: int | None = Field(None, ge=1, le=10_000)
    message_format: Literal["auto", "text"] = Field(
        "auto", description="auto: each channel's own (HTML email, Slack, Telegram); text: plain."
    )


class Subscription(BaseModel):
    """A name, one or more apprise URLs, filters and delivery options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    urls: Annotated[tuple[str, ...], Field(min_length=1)]
    timezone: str = "UTC"
    filters: Filters = Field(default_factory=Filters)
    delivery: DeliveryOptions = Field(default_factory=DeliveryOptions)

    @field_validator("urls")
    @classmethod
    def _apprise_accepts(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            try:
                Channel(url)
            except ChannelError as error:
                raise ValueError(str(error)) from None
        return urls

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {zone!r}; use an IANA name such as Asia/Bangkok"
            raise ValueError(msg) from None
        return zone

    def masked(self) -> dict[str, object]:
        """The subscription as shown to people: every URL masked."""
        shown = self.model_dump(mode="json")
        shown["urls"] = [Channel(url).masked for url in self.urls]
        return shown

    def in_quiet_hours(self, moment: datetime) -> bool:
        """Whether ``moment`` is inside this subscriber's quiet hours."""
        quiet = self.delivery.quiet_hours
        return quiet is not None and quiet.contains(
            moment.astimezone(ZoneInfo(self.timezone)).time()
        )


def rejection(subscription: Subscription, signal: Signal) -> str | None:
    """Why ``signal`` is not for ``subscription``, or None when it is."""
    wanted = subscription.filters
    if signal.label == "none" or signal.label not in wanted.kinds:
        return f"kind {signal.label} not subscribed"
    if signal.severity < wanted.min_severity:
        return f"severity {signal.severity.name.lower()} below {wanted.min_severity.name.lower()}"
    confidence = signal.escalation if signal.label == "escalation" else signal.ceasefire
    if confidence < wanted.min_confidence:
        return f"confidence {confidence:.2f} below {wanted.min_confidence:.2f}"
    if wanted.countries and not wanted.countries & set(signal.countries):
        return "none of the subscribed countries"
    if wanted.places and not {p.casefold() for p in wanted.places} & {
        place.name.casefold() for place in signal.places
    }:
        return "none of the subscribed places"
    if wanted.keywords:
        text = f"{signal.report.title}\n{signal.report.text}".casefold()
        if not any(keyword.casefold() in text for keyword in wanted.keywords):
            return "none of the subscribed keywords"
    return None
