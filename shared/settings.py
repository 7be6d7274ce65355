"""Configuration shared by every service, read from ``FLASHPOINT_*`` environment variables."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ServiceName = Literal["ingest", "classifier", "notifier"]


class Settings(BaseSettings):
    """Every knob of Flashpoint; each field is the variable ``FLASHPOINT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FLASHPOINT_", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis server; rediss:// for TLS, redis://:password@host for auth.",
    )

    inbox_stream: str = Field(
        "flashpoint:inbox", description="Raw reports from any source or outside program."
    )
    reports_stream: str = Field(
        "flashpoint:reports", description="Normalised, deduplicated reports."
    )
    signals_stream: str = Field("flashpoint:signals", description="Classified reports.")
    deliveries_stream: str = Field(
        "flashpoint:deliveries", description="The notifier's record of every delivery."
    )
    dead_letter_stream: str = Field(
        "flashpoint:dead-letters", description="Entries no service could process."
    )
    key_prefix: str = Field("flashpoint", description="Prefix of every non-stream Redis key.")

    ingest_group: str = "ingest"
    classifier_group: str = "classifier"
    notifier_group: str = "notifier"
    consumer_name: str | None = Field(
        None,
        description="Consumer name in the group; defaults to '<host>-<service>'. "
        "Give each replica on one host its own.",
    )

    read_count: int = Field(
        500, ge=1, le=10_000, description="Most entries one read takes from a stream."
    )
    notifier_read_count: int = Field(
        100,
        ge=1,
        le=1000,
        description="Most signals the notifier routes as one batch (the batch shares the "
        "handler timeout).",
    )
    poll_interval_ms: int = Field(100, ge=1, description="How long one read blocks.")
    claim_idle_ms: int = Field(
        30_000,
        ge=1,
        description="An entry pending this long is taken over from its (dead) consumer.",
    )
    handler_timeout_s: float = Field(
        120.0, gt=0, description="A handler running longer than this fails and is retried."
    )
    max_deliveries: int = Field(
        5, ge=1, description="Deliveries of one entry before it is dead-lettered."
    )
    stream_maxlen: int = Field(
        1_000_000, ge=1000, description="Approximate MAXLEN applied when publishing."
    )
    dedup_window_s: int = Field(
        7 * 24 * 3600, ge=1, description="How long a seen URL or text stays a duplicate."
    )

    graceful_timeout_s: float = Field(
        5.0, gt=0, description="On SIGTERM, how long in-flight entries may take to finish."
    )

    sources_file: Path | None = Field(
        None, description="YAML file of the sources ingest polls (see the README)."
    )
    webhook_port: int | None = Field(
        None, ge=1, le=65535, description="Serve POST /v1/reports on this port (unset: off)."
    )
    webhook_host: str = Field("127.0.0.1", description="Address the webhook listens on.")
    webhook_token: SecretStr | None = Field(
        None, description="Bearer token the webhook requires (at least 16 characters)."
    )
    webhook_token_file: Path | None = Field(
        None, description="File holding the webhook's bearer token (instead of the variable)."
    )
    webhook_max_bytes: int = Field(1_000_000, ge=1000, description="Largest request body.")
    webhook_max_items: int = Field(500, ge=1, description="Most reports in one request.")
    jsonl_path: Path | None = Field(
        None, description="JSON Lines file or folder the ingest replays and follows."
    )
    jsonl_poll_s: float = Field(1.0, gt=0, description="How often the JSONL source looks.")

    rules: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["builtin"],
        description="Rule sets the classifier uses: entry-point names (group flashpoint.rules) "
        "or YAML files, separated by commas or spaces; the first sets the threshold.",
    )
    notify_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["console://"],
        description="Apprise URLs alerts go to, separated by commas or spaces.",
    )
    subscriptions_file: Path | None = Field(
        None, description="YAML file of subscriptions the notifier loads at start (idempotent)."
    )
    flush_interval_s: float = Field(
        1.0, gt=0, description="How often the notifier looks for grouped alerts that are due."
    )
    interrupted_send: Literal["skip", "resend"] = Field(
        "skip",
        description="An alert a notifier began sending but never confirmed (it died or lost "
        "Redis mid-send): skip it and record it as uncertain, so no subscriber gets it twice, "
        "or resend it, so it arrives at least once.",
    )
    operators_subscription: str = Field(
        "operators",
        description="The stored subscription warned when a source falls silent "
        "(the dead man's switch of sources with silent_after_s).",
    )
    deadman_check_s: float = Field(
        30.0, gt=0, description="How often the notifier checks for silent sources."
    )
    notify_attempts: int = Field(3, ge=1, le=10, description="Tries per channel per delivery.")
    notify_backoff_s: float = Field(0.5, ge=0, description="First pause between tries.")
    rate_limit_wait_s: float = Field(
        30.0, ge=0, description="Least pause before retrying a channel that answered 429."
    )
    notify_timeout_s: float = Field(15.0, gt=0, description="Longest one channel call may take.")

    health_port: int | None = Field(
        None, ge=1, le=65535, description="Serve /healthz, /readyz and /metrics on this port."
    )
    health_host: str = Field("127.0.0.1", description="Address the health endpoints listen on.")
    ready_max_lag: int = Field(10_000, ge=0, description="Lag above which /readyz says 503.")
    sample_every_s: float = Field(5.0, gt=0, description="How often readiness is re-checked.")

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    data_dir: Path = Field(Path(".flashpoint"), description="Embedded Redis data and run files.")

    @field_validator("notify_urls", "rules", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    def consumer_for(self, service: ServiceName) -> str:
        """This process's consumer name within the service's group."""
        return self.consumer_name or f"{socket.gethostname()}-{service}"

    def key(self, *parts: str) -> str:
        """A Redis key under the configured prefix."""
        return ":".join((self.key_prefix, *parts))


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``****``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


def input_of(settings: Settings, service: ServiceName) -> tuple[str, str]:
    """The stream a service consumes and its consumer group there."""
    return {
        "ingest": (settings.inbox_stream, settings.ingest_group),
        "classifier": (settings.reports_stream, settings.classifier_group),
        "notifier": (settings.signals_stream, settings.notifier_group),
    }[service]
