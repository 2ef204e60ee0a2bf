"""Compat layer: `compat verify`: the report as text or JSON, progress on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from compat.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    table,
    where,
)
from compat.routing.declaration import REGISTRY
from compat.verify import runner as verification
from compat.verify.embedded import EmbeddedUnavailable

__all__ = ["verify"]


def _stderr(message: str) -> None:
    sys.stderr.write(f"compat verify: {message}\n")
    sys.stderr.flush()


def _ms(latency: verification.Latency) -> str:
    return f"{latency.p50_ms:.2f} / {latency.p95_ms:.2f}"


def _verify_text(report: verification.Report, out: TextIO) -> None:
    seeded = f"; seeded {report.seeded}" if report.seeded else ""
    out.write(
        f"database: {report.database}{seeded}; up to {report.sample} sampled calls per function "
        f"plus edge cases, in one transaction rolled back at the end\n"
    )
    table(
        [
            (
                f.key,
                f.kind.value,
                f.mode,
                f.cases,
                f.matches,
                f.mismatches,
                _ms(f.legacy),
                _ms(f.orm),
                f.verdict,
            )
            for f in report.functions
        ],
        (
            "key",
            "kind",
            "mode",
            "cases",
            "matches",
            "mismatches",
            "legacy ms p50 / p95",
            "orm ms p50 / p95",
            "verdict",
        ),
        out,
    )
    diffs = [f.first_diff for f in report.functions if f.first_diff]
    if diffs:
        out.write("\nfirst difference of each blocked function (personal data redacted):\n")
        for diff in diffs:
            out.write(f"{diff}\n")
    out.write("\n")
    for moved in report.sequences:
        out.write(
            f"sequence {moved.name}: {moved.before} -> {moved.after} during the run (an insert "
            f"draws its value for good, even when rolled back as every call here is)\n"
        )
    cases = sum(f.cases for f in report.functions)
    if report.verdict == verification.READY:
        out.write(
            f"verdict: ready: all {len(report.functions)} functions matched on all {cases} calls "
            f"({report.seconds:.1f} s)\n"
        )
    else:
        out.write(
            f"verdict: blocked: {len(report.blocked)} of {len(report.functions)} functions "
            f"did not match on every call: {', '.join(report.blocked)} ({report.seconds:.1f} s)\n"
        )


def verify(args: argparse.Namespace, out: TextIO) -> int:
    """Compare both paths of each function on real rows; exit 1 when anything mismatched."""
    keys = verification.select_keys(args.functions)
    if not keys:
        sys.stderr.write(
            f"compat verify: --functions {args.functions!r} matches no function; "
            f"valid keys are: {', '.join(sorted(REGISTRY))}\n"
        )
        return EXIT_USAGE
    progress = (lambda _message: None) if args.quiet else _stderr
    if verification.configured():
        progress(f"verifying the database at {where()} (no migration; every call is rolled back)")
        report = verification.verify(keys, sample_size=args.sample, progress=progress)
    else:
        progress("DATABASE_URL is not set: verifying on a throwaway PostgreSQL with generated data")
        try:
            report = verification.verify_embedded(keys, sample_size=args.sample, progress=progress)
        except EmbeddedUnavailable as error:
            sys.stderr.write(f"compat verify: {error}\n")
            return EXIT_UNAVAILABLE
        except KeyboardInterrupt:
            # The throwaway server is already stopped and removed by now.
            sys.stderr.write("compat verify: interrupted\n")
            return EXIT_INTERRUPTED
    if args.json:
        json.dump(report.as_json(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        _verify_text(report, out)
    return EXIT_OK if report.verdict == verification.READY else EXIT_FAILED
