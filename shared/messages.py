"""What crosses each stream: versioned pydantic models.

Every message carries ``schema_version``. Unknown extra fields are ignored, so a newer producer
can add fields; a version newer than this code understands is refused with a clear reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    StringConstraints,
    field_validator,
)

SCHEMA_VERSION = 1


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Label = Literal["escalation", "ceasefire", "none"]
SignalKind = Literal["escalation", "ceasefire"]


class Message(BaseModel):
    """Base of every stream message: versioned, tolerant of unknown fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if not 1 <= value <= SCHEMA_VERSION:
            msg = f"schema_version {value} is not supported; this service reads 1..{SCHEMA_VERSION}"
            raise ValueError(msg)
        return value


class RawReport(Message):
    """A report as any source or outside program writes it to the inbox stream.

    Only ``text`` is required. Outside programs may send flat field/value pairs with
    ``XADD``; every value then arrives as a string and is converted here.
    """

    text: NonEmptyText = Field(max_length=200_000)
    title: str = Field("", max_length=2_000)
    url: str | None = Field(None, max_length=4_000)
    source: str = Field("external", min_length=1, max_length=200)
    published_at: datetime | None = None
    language: str | None = Field(None, max_length=16)

    @field_validator("url", "language", "published_at", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            msg = "url must start with http:// or https://"
            raise ValueError(msg)
        return value


class Report(Message):
    """A normalised, deduplicated report, ready to classify."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    source: NonEmptyText
    url: str | None = None
    title: str = ""
    text: NonEmptyText
    published_at: UtcDatetime
    published_estimated: bool = False
    fetched_at: UtcDatetime
    language: str | None = None


Modality = Literal["event", "intent", "threat", "reported", "background"]


class Evidence(BaseModel):
    """One phrase that counted towards a signal, with the weight it was given."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: SignalKind
    rule: str
    phrase: str
    start: NonNegativeInt
    end: NonNegativeInt
    weight: Score
    modality: Modality = Field(
        "event",
        description="event: it happened; intent: called for or hoped; threat: threatened; "
        "reported: a claim someone makes about it (accused, blamed, complained; weighs less); "
        "background: a past event mentioned for context (weighs less).",
    )


class Place(BaseModel):
    """A place named in a report."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    admin_level: Literal[0, 1, 2] = Field(description="0 country, 1 province, 2 district")


ActorKind = Literal["armed_forces", "government", "organisation", "armed_group"]


class Actor(BaseModel):
    """Who acted or spoke: an army, a government, an organisation."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    kind: ActorKind
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class Figures(BaseModel):
    """People killed, injured and displaced, as read from the text (lower bounds)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    killed: NonNegativeInt | None = None
    injured: NonNegativeInt | None = None
    displaced: NonNegativeInt | None = None


class Flag(BaseModel):
    """A signal kind whose score reached the threshold, and how it was expressed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: SignalKind
    score: Score
    modality: Modality = Field(
        description="event when any evidence is an event, else the strongest other modality"
    )


class Severity(IntEnum):
    """How serious a signal is, from 1 (info) to 5 (critical)."""

    INFO = 1
    LOW = 2
    MODERATE = 3
    HIGH = 4
    CRITICAL = 5


class Signal(Message):
    """A report with the classifier's verdict."""

    report: Report
    label: Label
    escalation: Score
    ceasefire: Score
    severity: Severity
    flags: tuple[Flag, ...] = Field(
        (), description="Every kind that reached the threshold; a report can carry both."
    )
    evidence: tuple[Evidence, ...] = ()
    places: tuple[Place, ...] = ()
    countries: tuple[str, ...] = Field(
        (), description="ISO 3166 alpha-2 codes of the countries where it happened."
    )
    actors: tuple[Actor, ...] = ()
    figures: Figures = Field(default_factory=Figures)
    incident_key: str | None = Field(
        None, description="Groups reports on one situation: kind, countries, main region."
    )
    classifier: str = Field(description="Rule set name and version that produced it.")
    classified_at: UtcDatetime = Field(default_factory=utc_now)

    @property
    def id(self) -> str:
        """The signal is identified by its report."""
        return self.report.id


DeliveryOutcome = Literal["sent", "failed", "duplicate", "suppressed", "grouped", "uncertain"]


class DeliveryRecord(Message):
    """What the notifier did with one signal on one channel."""

    signal_id: str
    label: Label
    subscription: str = ""
    channel: str = Field("", description="The channel's URL with its secrets masked.")
    outcome: DeliveryOutcome
    attempts: NonNegativeInt = 0
    error: str | None = None
    reason: str | None = Field(None, description="Why it was suppressed, when it was.")
    at: UtcDatetime = Field(default_factory=utc_now)


class DeadLetter(Message):
    """An entry a service gave up on, with everything needed to inspect and replay it."""

    origin_stream: str
    entry_id: str
    group: str
    consumer: str
    deliveries: NonNegativeInt
    error: str
    error_type: str
    payload: dict[str, str] = Field(description="The original entry's fields, as stored.")
    report_id: str | None = None
    dead_at: UtcDatetime = Field(default_factory=utc_now)
