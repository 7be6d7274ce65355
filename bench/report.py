"""The benchmark's results as a table for people and a latency-over-time plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    "end_to_end": 5000.0,
    "ratio_to_relay": 0.5,
    "ratio_to_naive": 4.0,
    "p99_ms": 50.0,
    "rss_mib": 150.0,
}


def table(results: dict[str, Any]) -> str:
    """A plain-text summary, each figure beside its target where it has one."""
    rows: list[tuple[str, str, str]] = []

    def row(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))

    flashpoint = results["flashpoint"]
    row(
        "Flashpoint end to end",
        f"{flashpoint['per_second']:,.0f} reports/s",
        _against(flashpoint["per_second"], TARGETS["end_to_end"], "≥ {:,.0f}"),
    )
    if "relay" in results:
        row("raw relay (limit)", f"{results['relay']['per_second']:,.0f} reports/s")
        row("naive FastStream", f"{results['naive']['per_second']:,.0f} reports/s")
        row(
            "Flashpoint / relay",
            f"{results['ratio_to_relay']:.2f}",
            _against(results["ratio_to_relay"], TARGETS["ratio_to_relay"], "≥ {:.1f}"),
        )
        row(
            "Flashpoint / naive",
            f"{results['ratio_to_naive']:.1f}x",
            _against(results["ratio_to_naive"], TARGETS["ratio_to_naive"], "≥ {:.0f}x"),
        )
    cpu = flashpoint.get("cpu_us_per_report", {})
    if cpu:
        shown_cpu = ", ".join(f"{name} {value:.0f}" for name, value in cpu.items())
        row("CPU per report (us)", f"{shown_cpu}; total {sum(cpu.values()):.0f}")
    for name, stage in results["stages_alone"].items():
        row(f"{name} alone", f"{stage['per_second']:,.0f} entries/s")
    latency = results["latency"]
    shown = latency["latency_ms"]
    row(
        f"latency at {latency['offered_per_second']} reports/s",
        f"p50 {shown['p50']:.0f} · p95 {shown['p95']:.0f} · p99 {shown['p99']:.0f} · "
        f"max {shown['max']:.0f} ms",
        _against(-shown["p99"], -TARGETS["p99_ms"], "p99 < {:.0f} ms", negate=True),
    )
    for name, memory in flashpoint.get("memory_kib", {}).items():
        peak = memory.get("peak_rss", 0) / 1024
        steady = latency["memory_kib"].get(name, {}).get("rss", 0) / 1024
        row(
            f"{name} memory",
            f"steady {steady:.0f} MiB, peak {peak:.0f} MiB",
            _against(-steady, -TARGETS["rss_mib"], "< {:.0f} MiB", negate=True),
        )
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{w:<{width}}  {v:<{value_width}}  {t}".rstrip() for w, v, t in rows)


def _against(value: float, target: float, label: str, *, negate: bool = False) -> str:
    shown = label.format(-target if negate else target)
    return f"target {shown}: {'met' if value >= target else 'NOT met'}"


def plot(results: dict[str, Any], path: Path) -> None:
    """Save latency over the fixed-load run as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        msg = "the plot needs matplotlib: pip install 'flashpoint[bench]'"
        raise RuntimeError(msg) from error
    latency = results["latency"]
    samples = latency["samples"]
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.scatter([sent / 1000 for sent, _ in samples], [lat for _, lat in samples], s=3, alpha=0.5)
    axes.axhline(TARGETS["p99_ms"], color="red", linewidth=1, label="p99 target")
    axes.set_xlabel("seconds since the first report")
    axes.set_ylabel("publish → decision (ms)")
    shown = latency["latency_ms"]
    axes.set_title(
        f"Flashpoint at {latency['offered_per_second']} reports/s: "
        f"p50 {shown['p50']:.0f} ms, p99 {shown['p99']:.0f} ms"
    )
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
