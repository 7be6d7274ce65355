"""`flashpoint bench` keeps working: a small run, end to end, with its JSON and plot.

The numbers are the benchmark's to report; this only checks that every part ran and that
what it reports is consistent with what went through Redis.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import percentiles

pytestmark = pytest.mark.slow


def test_small_benchmark_runs_every_part(tmp_path: Path) -> None:
    out, plot = tmp_path / "bench.json", tmp_path / "latency.png"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "services.cli", "bench", "--reports", "400"),
            *("--naive-reports", "200", "--rate", "100", "--latency-seconds", "2"),
            *("--json", str(out), "--plot", str(plot)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Flashpoint end to end" in done.stdout
    assert "[bench] relay:" in done.stderr  # progress was shown
    results = json.loads(out.read_text())

    for pipeline, reports in (("relay", 400), ("naive", 200), ("flashpoint", 400)):
        run = results[pipeline]
        assert run["reports"] == reports
        assert run["per_second"] > 0
        assert run["stage_outputs"][0] == reports  # everything was published to the first stage
    assert results["relay"]["stage_outputs"] == [400, 400, 400]  # the relay moves every entry
    assert 0 < results["flashpoint"]["stage_outputs"][1] <= 400  # ingest drops duplicates only
    assert set(results["flashpoint"]["memory_kib"]) == {"ingest", "classifier", "notifier"}
    assert set(results["flashpoint"]["cpu_us_per_report"]) >= {"ingest", "classifier", "notifier"}
    assert results["ratio_to_relay"] == pytest.approx(  # rounded to three decimals
        results["flashpoint"]["per_second"] / results["relay"]["per_second"], abs=0.0005
    )
    assert set(results["stages_alone"]) == {"ingest", "classifier", "notifier"}

    latency = results["latency"]
    assert latency["published"] == 200
    assert 0 < latency["decided"] <= latency["published"]
    assert latency["latency_ms"] == percentiles([lat for _, lat in latency["samples"]])
    assert not math.isnan(latency["latency_ms"]["p99"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert math.isnan(percentiles([])["p50"])
