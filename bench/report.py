"""Benchmarks: the results as a Markdown table, the issue's target ratios, and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.dispatch import DIRECT, DISPATCH, FACADE, NOOP, NOOP_FACADE
from bench.measure import Samples, percentile
from bench.operations import AGGREGATE, PAGE, POINT_READ, WRITE, Operation
from bench.suite import ORIGINAL, PEER, VARIANTS

__all__ = ["Target", "evaluate", "markdown", "results_json"]


@dataclass(frozen=True, slots=True)
class Target:
    """One ratio the issue asks for, as measured in this run."""

    name: str
    wanted: str
    measured: float | None
    met: bool | None
    detail: str

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else "missed"


def _median(samples: Samples, operation: str, variant: str) -> float | None:
    summary = samples.summary(operation, variant)
    return None if summary is None else summary.median_us


def _ratios(
    samples: Samples, operations: Sequence[Operation], over: str, under: str, category: str | None
) -> list[tuple[str, float]]:
    found = []
    for operation in operations:
        if category is not None and operation.category != category:
            continue
        top, bottom = (
            _median(samples, operation.name, over),
            _median(samples, operation.name, under),
        )
        if top is not None and bottom:
            found.append((operation.name, top / bottom))
    return found


def _at_most(
    name: str,
    limit: float,
    ratios: list[tuple[str, float]],
    peer: list[tuple[str, float]] | None = None,
    label: str = "the same over the peer",
) -> Target:
    if not ratios:
        return Target(name, f"<= {limit}x", None, None, "no operation measured")
    worst_op, worst = max(ratios, key=lambda item: item[1])
    listing = ", ".join(f"{op.split('.')[-1]} {ratio:.2f}x" for op, ratio in ratios)
    detail = f"worst {worst_op}; {listing}"
    if peer:
        detail += f"; {label}: " + ", ".join(
            f"{op.split('.')[-1]} {ratio:.2f}x" for op, ratio in peer
        )
    return Target(name, f"<= {limit}x", worst, worst <= limit, detail)


def _at_least(name: str, limit: float, ratios: list[tuple[str, float]]) -> Target:
    if not ratios:
        return Target(name, f">= {limit}x", None, None, "no operation measured")
    worst_op, worst = min(ratios, key=lambda item: item[1])
    listing = ", ".join(f"{op.split('.')[-1]} {ratio:.1f}x" for op, ratio in ratios)
    return Target(name, f">= {limit}x", worst, worst >= limit, f"worst {worst_op}; {listing}")


def evaluate(
    samples: Samples, operations: Sequence[Operation], bulk: dict[str, list[float]]
) -> list[Target]:
    """The issue's targets, each with the ratio of medians from this run, and over the peer."""
    targets: list[Target] = []

    def ratios(over: str, under: str, category: str | None = None) -> list[tuple[str, float]]:
        return _ratios(samples, operations, over, under, category)

    targets.append(
        _at_most("facade legacy / peer, point reads", 1.15, ratios("legacy", PEER, POINT_READ))
    )
    targets.append(_at_most("orm / peer, point reads", 1.35, ratios("orm", PEER, POINT_READ)))
    direct, routed = _median(samples, DISPATCH, DIRECT), _median(samples, DISPATCH, FACADE)
    noop_routed, noop = _median(samples, DISPATCH, NOOP_FACADE), _median(samples, DISPATCH, NOOP)
    if direct and routed:
        bare = ""
        if noop_routed is not None and noop is not None:
            bare = f"; bare dispatch {noop_routed - noop:.1f} us"
        targets.append(
            Target(
                "facade dispatch, legacy mode / legacy function on the same pooled connection",
                "<= 1.05x",
                routed / direct,
                routed / direct <= 1.05,
                f"{routed:.0f} us vs {direct:.0f} us{bare}",
            )
        )
    targets.append(
        _at_most(
            "orm / peer, single-row writes",
            1.3,
            ratios("orm", PEER, WRITE),
            ratios("orm", "legacy", WRITE),
            "orm over the facade's legacy mode",
        )
    )
    compared = [
        *[(f"shadow {op}", r) for op, r in ratios("shadow@1", "legacy", POINT_READ)],
        *[(f"live {op}", r) for op, r in ratios("live@1", "orm", POINT_READ)],
    ]
    targets.append(
        _at_most(
            "compared read at rate 1 / the facade's plain read (shadow/legacy, live/orm), "
            "point reads",
            2.0,
            compared,
            ratios("shadow@1", PEER, POINT_READ),
            "shadow@1 over the peer",
        )
    )
    sampled = [
        *[(f"shadow {op}", r) for op, r in ratios("shadow@0.01", "legacy")],
        *[(f"live {op}", r) for op, r in ratios("live@0.01", "orm")],
    ]
    targets.append(
        _at_most(
            "compared at rate 0.01 / the facade's plain call (shadow/legacy, live/orm)",
            1.05,
            sampled,
            ratios("shadow@0.01", PEER),
            "shadow@0.01 over the peer",
        )
    )
    for category, limit in ((PAGE, 1.1), (AGGREGATE, 1.2)):
        found = ratios("orm", "legacy", category)
        peer = ratios("orm", PEER, category)
        if category == AGGREGATE:
            found = [item for item in found if item[0] == "uploads.upload_stats"]
            peer = [item for item in peer if item[0] == "uploads.upload_stats"]
        targets.append(
            _at_most(f"orm / legacy, {category}s", limit, found, peer, "orm over the peer")
        )
    executemany, copy = bulk.get("legacy executemany"), bulk.get("create_many (COPY)")
    if executemany and copy:
        speedup = statistics.median(executemany) / statistics.median(copy)
        floor = bulk.get("raw COPY (floor)")
        floor_text = f"; raw COPY floor {statistics.median(floor):.1f} us/row" if floor else ""
        targets.append(
            Target(
                "bulk insert: legacy executemany / create_many",
                ">= 2x",
                speedup,
                speedup >= 2,
                f"{statistics.median(executemany):.1f} vs {statistics.median(copy):.1f} us/row"
                + floor_text,
            )
        )
    return targets


def _cell(samples: Samples, operation: str, variant: str) -> str:
    summary = samples.summary(operation, variant)
    if summary is None:
        return "-"
    return f"{summary.median_us:,.0f} / {summary.p95_us:,.0f}"


def _ratio_cell(samples: Samples, operation: str, over: str, under: str) -> str:
    top, bottom = _median(samples, operation, over), _median(samples, operation, under)
    return "-" if top is None or not bottom else f"{top / bottom:.2f}"


def markdown(
    samples: Samples,
    operations: Sequence[Operation],
    bulk: dict[str, list[float]],
    targets: Sequence[Target],
    trips: dict[str, dict[str, list[str]]] | None = None,
) -> str:
    """The per-operation table (median / p95 in microseconds), dispatch, bulk and targets."""
    variants = list(VARIANTS)
    ratios = [
        ("legacy", PEER),
        ("orm", PEER),
        ("orm", "legacy"),
        ("shadow@1", "legacy"),
        ("shadow@1", PEER),
        ("live@1", "orm"),
        ("live@1", PEER),
        (ORIGINAL, "legacy"),
        (ORIGINAL, PEER),
    ]
    trip_variants = (PEER, "legacy", "orm", "shadow@1", "live@1")
    lines = [
        "Per call, median / p95 in microseconds; each facade call is its own transaction.",
        "Round trips per call: " + " / ".join(trip_variants) + ".",
        "",
        "| operation | category | round trips | "
        + " | ".join(variants)
        + " | "
        + " | ".join(f"{a}/{b}" for a, b in ratios)
        + " |",
        "|---|---|---|" + "---:|" * (len(variants) + len(ratios)),
    ]
    for operation in operations:
        cells = [_cell(samples, operation.name, variant) for variant in variants]
        sent = (trips or {}).get(operation.name, {})
        counts = " / ".join(str(len(sent[v])) if v in sent else "-" for v in trip_variants)
        lines.append(
            f"| {operation.name} | {operation.category} | {counts} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(_ratio_cell(samples, operation.name, a, b) for a, b in ratios)
            + " |"
        )
    dispatch = [
        (variant, samples.summary(DISPATCH, variant))
        for variant in (DIRECT, FACADE, NOOP_FACADE, NOOP)
    ]
    if any(summary for _, summary in dispatch):
        lines += ["", f"{DISPATCH} (median / p95, us):", ""]
        lines += ["| variant | median | p95 |", "|---|---:|---:|"]
        for variant, summary in dispatch:
            if summary is not None:
                lines.append(f"| {variant} | {summary.median_us:,.2f} | {summary.p95_us:,.2f} |")
    if bulk:
        lines += ["", "Bulk insert of new sessions, us per row (median / p95 of rounds):", ""]
        lines += ["| variant | median | p95 |", "|---|---:|---:|"]
        for name, values in bulk.items():
            lines.append(
                f"| {name} | {statistics.median(values):,.1f} | {percentile(values, 0.95):,.1f} |"
            )
    lines += ["", "| target | wanted | measured | verdict | detail |", "|---|---|---:|---|---|"]
    for target in targets:
        measured = "-" if target.measured is None else f"{target.measured:.2f}x"
        lines.append(
            f"| {target.name} | {target.wanted} | {measured} | {target.verdict} | {target.detail} |"
        )
    return "\n".join(lines)


def results_json(
    samples: Samples,
    operations: Sequence[Operation],
    bulk: dict[str, list[float]],
    targets: Sequence[Target],
    context: dict[str, Any],
    counts: dict[tuple[str, str], int],
    trips: dict[str, dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    """Everything measured, for machines: per operation and variant, bulk, targets, context."""

    def summarise(operation: str, variant: str) -> dict[str, float | int] | None:
        summary = samples.summary(operation, variant)
        return None if summary is None else summary.as_dict()

    return {
        "context": context,
        "operations": {
            operation.name: {
                "category": operation.category,
                **{variant: summarise(operation.name, variant) for variant in VARIANTS},
            }
            for operation in operations
        },
        "dispatch": {
            variant: summarise(DISPATCH, variant) for variant in (DIRECT, FACADE, NOOP_FACADE, NOOP)
        },
        "bulk_us_per_row": {
            name: {"median": statistics.median(values), "p95": percentile(values, 0.95)}
            for name, values in bulk.items()
        },
        "targets": [{**asdict(target), "verdict": target.verdict} for target in targets],
        "round_trips": {
            name: {variant: len(queries) for variant, queries in sent.items()}
            for name, sent in (trips or {}).items()
        },
        "comparisons": {
            f"{key} {outcome}": count for (key, outcome), count in sorted(counts.items())
        },
    }
