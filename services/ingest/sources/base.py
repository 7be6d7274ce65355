"""The source plugin interface, the registry, and the configuration file of sources.

A source is a class registered in the ``flashpoint.sources`` entry-point group (the built-in
ones too) with an ``Options`` pydantic model and an async ``poll()`` that publishes what is
new. Ingest runs each configured instance on its own interval, with backoff on errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol

import redis.asyncio as aioredis
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.problems import problems
from shared.settings import Settings

ENTRY_POINT_GROUP = "flashpoint.sources"

Publish = Callable[[dict[str, Any]], Awaitable[object]]
DeadLetter = Callable[[str, str, dict[str, str]], Awaitable[object]]


class SourceError(ValueError):
    """A source that cannot be configured or loaded, naming it and what is wrong."""


class RetryLater(Exception):
    """The source was asked to slow down (HTTP 429 or 503): poll again after ``seconds``."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class SourceContext:
    """What ingest gives a source: where to publish, where bad items go, and Redis for state."""

    name: str
    redis: aioredis.Redis
    settings: Settings
    publish: Publish
    dead_letter: DeadLetter

    def key(self, *parts: str) -> str:
        """A Redis key for this source's own state."""
        return self.settings.key("source", self.name, *parts)


class Source(Protocol):
    """What a source plugin provides."""

    Options: ClassVar[type[BaseModel]]

    def __init__(self, options: Any, context: SourceContext) -> None: ...

    async def poll(self) -> int:
        """Publish what is new; return how many items were published."""
        ...


class SourceEntry(BaseModel):
    """One configured source instance."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    type: str
    interval_s: float = Field(300.0, ge=0.05, le=86_400.0)
    silent_after_s: float | None = Field(
        None,
        ge=1.0,
        description="Warn the operators when the source has published nothing for this long "
        "(a dead man's switch); unset, nobody is warned.",
    )
    options: dict[str, Any] = Field(default_factory=dict)


class SourcesFile(BaseModel):
    """The sources file: a list of source entries with unique names."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceEntry]


@dataclass(frozen=True)
class ConfiguredSource:
    """A validated entry: its plugin class and its validated options."""

    entry: SourceEntry
    plugin: type[Source]
    options: BaseModel


def available_types() -> dict[str, Any]:
    """Registered source types by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_type(name: str) -> type[Source]:
    """The plugin class registered as ``name``; a plugin that fails to load is an error."""
    found = available_types()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        msg = f"unknown source type {name!r} (known: {known})"
        raise SourceError(msg)
    try:
        plugin = found[name].load()
    except Exception as error:
        msg = f"source type {name!r} failed to load: {error}"
        raise SourceError(msg) from error
    if not hasattr(plugin, "Options") or not hasattr(plugin, "poll"):
        msg = f"source type {name!r} is not a source (it needs Options and poll())"
        raise SourceError(msg)
    loaded: type[Source] = plugin
    return loaded


def configure(entries: list[SourceEntry], origin: str) -> list[ConfiguredSource]:
    """Validate every entry's type and options; errors name the entry and the field."""
    configured, names = [], set()
    for number, entry in enumerate(entries):
        where = f"{origin}: source {number} ({entry.name!r})"
        if entry.name in names:
            msg = f"{where}: the name is used twice"
            raise SourceError(msg)
        names.add(entry.name)
        try:
            plugin = load_type(entry.type)
            options = plugin.Options.model_validate(entry.options)
        except SourceError as error:
            raise SourceError(f"{where}: {error}") from error
        except ValidationError as error:
            found = "; ".join(problems(error, prefix="options."))
            raise SourceError(f"{where}: {found}") from error
        configured.append(ConfiguredSource(entry, plugin, options))
    return configured


def read_sources_file(path: Path) -> list[ConfiguredSource]:
    """Read, validate and configure a YAML sources file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = SourcesFile.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        msg = f"{path}: cannot read sources: {error}"
        raise SourceError(msg) from error
    except ValidationError as error:
        raise SourceError(f"{path}: {'; '.join(problems(error))}") from error
    return configure(parsed.sources, str(path))


def configured_sources(settings: Settings) -> list[ConfiguredSource]:
    """Sources from ``FLASHPOINT_SOURCES_FILE``, plus ``FLASHPOINT_JSONL_PATH`` as ``jsonl``."""
    sources = read_sources_file(settings.sources_file) if settings.sources_file else []
    if settings.jsonl_path is not None:
        jsonl = SourceEntry(
            name="jsonl",
            type="jsonl",
            interval_s=settings.jsonl_poll_s,
            options={"path": str(settings.jsonl_path)},
        )
        sources += configure([jsonl], "FLASHPOINT_JSONL_PATH")
    return sources
