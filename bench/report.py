"""Benchmarks: the results as a Markdown table, the issue's target ratios, and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.dispatch import DIRECT, DISPATCH, FACADE, NOOP, NOOP_FACADE
from bench.measure import Samples, percentile
from bench.operations import AGGREGATE, PAGE, POINT_READ, WRITE, Operation
from bench.suite import ORIGINAL, VARIANTS

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


def _at_most(name: str, limit: float, ratios: list[tuple[str, float]]) -> Target:
    if not ratios:
        return Target(name, f"<= {limit}x", None, None, "no operation measured")
    worst_op, worst = max(ratios, key=lambda item: item[1])
    listing = ", ".join(f"{op.split('.')[-1]} {ratio:.2f}x" for op, ratio in ratios)
    return Target(name, f"<= {limit}x", worst, worst <= limit, f"worst {worst_op}; {listing}")


def _at_least(name: str, limit: float, ratios: list[tuple[str, float]]) -> Target:
    if not ratios:
        return Target(name, f">= {limit}x", None, None, "no operation measured")
    worst_op, worst = min(ratios, key=lambda item: item[1])
    listing = ", ".join(f"{op.split('.')[-1]} {ratio:.1f}x" for op, ratio in ratios)
    return Target(name, f">= {limit}x", worst, worst >= limit, f"worst {worst_op}; {listing}")


def evaluate(
    samples: Samples, operations: Sequence[Operation], bulk: dict[str, list[float]]
) -> list[Target]:
    """The issue's targets, each with the ratio of medians from this run."""
    targets: list[Target] = []
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
        _at_least(
            "original connect-per-call / legacy through the facade (pooled)",
            10,
            _ratios(samples, operations, ORIGINAL, "legacy", None),
        )
    )
    for category, limit in ((POINT_READ, 1.3), (WRITE, 1.6), (PAGE, 1.1), (AGGREGATE, 1.2)):
        ratios = _ratios(samples, operations, "orm", "legacy", category)
        if category == AGGREGATE:
            ratios = [item for item in ratios if item[0] == "uploads.upload_stats"]
        targets.append(_at_most(f"orm / legacy, {category}s", limit, ratios))
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
    targets.append(
        _at_most(
            "shadow@0.01 / legacy",
            1.05,
            _ratios(samples, operations, "shadow@0.01", "legacy", None),
        )
    )
    targets.append(
        _at_most("shadow@1 / legacy", 2.3, _ratios(samples, operations, "shadow@1", "legacy", None))
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
) -> str:
    """The per-operation table (median / p95 in microseconds), dispatch, bulk and targets."""
    variants = list(VARIANTS)
    lines = [
        "Per call, median / p95 in microseconds; each facade call is its own transaction.",
        "",
        "| operation | category | " + " | ".join(variants) + " | orm/legacy | original/legacy |",
        "|---|---|" + "---:|" * (len(variants) + 2),
    ]
    for operation in operations:
        cells = [_cell(samples, operation.name, variant) for variant in variants]
        lines.append(
            f"| {operation.name} | {operation.category} | "
            + " | ".join(cells)
            + f" | {_ratio_cell(samples, operation.name, 'orm', 'legacy')}"
            + f" | {_ratio_cell(samples, operation.name, ORIGINAL, 'legacy')} |"
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
        "comparisons": {
            f"{key} {outcome}": count for (key, outcome), count in sorted(counts.items())
        },
    }
