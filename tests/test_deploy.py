"""What ships beside the code: the compose file, the Dockerfile and the AsyncAPI contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.contract import asyncapi_document
from shared.settings import Settings


@pytest.fixture
def compose(repo_root: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    return data


class TestCompose:
    def test_redis_7_with_append_only_persistence(self, compose: dict[str, Any]) -> None:
        """Redis is version 7, keeps an append-only file on a volume, and is health-checked."""
        redis = compose["services"]["redis"]
        assert redis["image"].startswith("redis:7")
        command = redis["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert any(volume.endswith(":/data") for volume in redis["volumes"])
        assert "redis-cli" in redis["healthcheck"]["test"]

    @pytest.mark.parametrize("service", ["ingest", "classifier", "notifier"])
    def test_service_runs_from_the_one_image(self, compose: dict[str, Any], service: str) -> None:
        """Each service is built from the Dockerfile, runs its own command and is checked."""
        spec = compose["services"][service]
        assert spec["build"] == "."
        assert spec["image"] == "flashpoint:latest"
        assert spec["command"] == ["flashpoint", "run", service]
        assert spec["healthcheck"]["test"] == ["CMD", "flashpoint", "health", service]
        assert spec["environment"]["FLASHPOINT_REDIS_URL"] == "redis://redis:6379/0"
        assert spec["depends_on"]["redis"]["condition"] == "service_healthy"

    def test_dockerfile_installs_with_the_constraints(self, repo_root: Path) -> None:
        """The image installs the tested versions and runs as a non-root user."""
        dockerfile = (repo_root / "Dockerfile").read_text()
        assert "-c constraints.txt" in dockerfile
        assert "\nUSER " in dockerfile


class TestAsyncApi:
    def test_committed_document_matches_the_code(self, repo_root: Path) -> None:
        """shared/asyncapi.json is what `flashpoint docs` generates now (run `make docs`)."""
        committed = (repo_root / "shared" / "asyncapi.json").read_text()
        assert committed == asyncapi_document()

    def test_document_ignores_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A Redis password in the environment never reaches the published contract."""
        monkeypatch.setenv("FLASHPOINT_REDIS_URL", "redis://:sup3rsecret@127.0.0.1:6399/0")
        assert "sup3rsecret" not in asyncapi_document()

    def test_document_names_every_stream_and_message(self) -> None:
        """Every stream and message model of the contract is in the document."""
        document = asyncapi_document()
        for name in (
            "flashpoint:inbox",
            "flashpoint:reports",
            "flashpoint:signals",
            "flashpoint:deliveries",
            "flashpoint:dead-letters",
        ):
            assert f'"{name}"' in document
        for model in ("RawReport", "Report", "Signal", "DeliveryRecord", "DeadLetter"):
            assert f'"{model}"' in document


class TestReadme:
    def test_every_setting_is_documented(self, repo_root: Path) -> None:
        """Each FLASHPOINT_* variable the code reads has a row in the README."""
        readme = (repo_root / "README.md").read_text()
        missing = [
            f"FLASHPOINT_{name.upper()}"
            for name in Settings.model_fields
            if f"`FLASHPOINT_{name.upper()}`" not in readme
        ]
        assert missing == []

    def test_quick_start_is_two_commands(self, repo_root: Path) -> None:
        """The README's quick start is `make run` and `make test`."""
        readme = (repo_root / "README.md").read_text()
        quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
        assert "make run" in quick_start
        assert "make test" in quick_start
