"""Compat layer: `compat flags list|set|plan|history` and `compat kill-switch`."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import sys
import time
from collections.abc import Collection
from typing import Any, TextIO

from compat.cli.output import EXIT_FAILED, EXIT_OK, printable, table
from compat.errors import FlagChangedMeanwhile, InvalidFlagValue, UnknownFlag
from compat.flags.modes import Mode, check_key, parse_mode, parse_percent, parse_sample_rate
from compat.rollout.gates import STAGES, evidence, gate, next_step
from compat.rollout.guard import GUARD, Limits, Policy, watch
from compat.runtime import get_runtime
from compat.verify import runner as verification

__all__ = ["flags_history", "flags_list", "flags_plan", "flags_set", "guard", "kill_switch"]


def flags_list(args: argparse.Namespace, out: TextIO) -> int:
    """Every key, its effective mode, where that mode comes from, its sample rate."""
    store = get_runtime().flags
    # The store keeps serving the defaults when it cannot read the table; listing
    # them as the effective modes would mislead whoever decides the next flip.
    store.refresh(strict=True)
    states = store.states()
    table(
        [(s.key, s.mode.value, s.source, f"{s.sample_rate:g}", _ramp(s.percent)) for s in states],
        ("key", "mode", "source", "sample", "ramp"),
        out,
    )
    for problem in store.problems:
        out.write(f"warning: {problem} (ignored)\n")
    return EXIT_OK


def _ramp(percent: float | None) -> str:
    return "-" if percent is None or percent >= 100 else f"{percent:g}%"


def _ramped(percent: float | None) -> str:
    """``, ramp 10%`` for a ramped flag, nothing for a whole one."""
    return "" if percent is None or percent >= 100 else f", ramp {percent:g}%"


def _at(percent: float | None) -> str:
    """`` 10%`` after a ramped mode in the history."""
    return "" if percent is None or percent >= 100 else f" {percent:g}%"


def _keys(pattern: str, keys: Collection[str]) -> list[str]:
    """The keys a KEY argument names: one key, or every key a glob (``uploads.*``) matches."""
    if any(ch in pattern for ch in "*?["):
        matched = sorted(key for key in keys if fnmatch.fnmatchcase(key, pattern))
        if not matched:
            raise UnknownFlag(
                f"{pattern!r} matches no flag key; valid keys are: {', '.join(sorted(keys))}"
            )
        return matched
    check_key(pattern, keys)
    return [pattern]


def _verified(key: str) -> str | None:
    report = verification.verify([key], sample_size=verification.DEFAULT_SAMPLE)
    [result] = report.functions
    if result.verdict == verification.READY:
        return None
    return f"{result.mismatches} of {result.cases} verify calls mismatched"


def flags_set(args: argparse.Namespace, out: TextIO) -> int:
    """Set the flags of one key or a glob of keys, in one transaction, each audited.

    A step forward (to live, to orm) passes its gate first: evidence from the
    stage before, and `compat verify` ready. Without it nothing is written
    and the exit status is 1, unless --force (the audit says it was forced,
    and with what evidence).
    """
    store = get_runtime().flags
    mode = parse_mode(args.key, args.mode)
    keys = _keys(args.key, store.keys)
    # Refused before any SQL, as the store would refuse them.
    if not args.reason.strip():
        raise InvalidFlagValue(f"{args.key}: a reason is required for every flag change")
    if args.sample is not None:
        parse_sample_rate(args.key, args.sample)
    parse_percent(args.key, args.percent)
    # Gated against what the shared table holds (the environment or the kill
    # switch may override it in this shell), and checked again when written.
    current = store.table_modes()
    refused: list[str] = []
    forced: dict[str, str] = {}
    to_verify: list[str] = []
    for key in keys:
        with get_runtime().engine.connect() as connection:  # short: never held across verify
            decision = gate(
                connection,
                key,
                current[key],
                mode,
                min_calls=args.min_calls,
                window_minutes=args.window,
            )
        if not decision.allowed:
            if args.force:
                forced[key] = decision.reason
            else:
                refused.append(f"{key}: {decision.reason}")
        elif decision.evidence is not None and not args.force:
            to_verify.append(key)
    for key in to_verify if not refused else ():
        blocked = _verified(key)
        if blocked is not None:
            refused.append(f"{key}: compat verify is not ready: {blocked}")
    if refused:
        for line in refused:
            sys.stderr.write(f"compat: refused: {line}\n")
        sys.stderr.write(
            "compat: nothing was changed; --force (with --reason) overrides, and the audit "
            "records it\n"
        )
        return EXIT_FAILED
    try:
        changes = store.set_many(
            keys,
            mode.value,
            reason=args.reason,
            forced=forced,
            by=args.by,
            sample_rate=args.sample,
            percent=args.percent,
            expected=current,
        )
    except FlagChangedMeanwhile as error:
        sys.stderr.write(f"compat: {error}; nothing was changed, look again and retry\n")
        return EXIT_FAILED
    effective = {state.key: state for state in store.states()}
    for change in changes:
        out.write(
            f"{change.key}: {change.old_mode or 'legacy (default)'} -> {change.new_mode} "
            f"(sample {change.new_sample_rate:g}{_ramped(change.new_percent)}) "
            f"by {printable(change.changed_by)}: {printable(change.reason)}\n"
        )
        state = effective[change.key]
        if state.source != "table":
            out.write(
                f"note: {change.key} is overridden by {state.source} "
                f"(effective mode {state.mode.value})\n"
            )
    return EXIT_OK


def flags_plan(args: argparse.Namespace, out: TextIO) -> int:
    """Per function: its stage, the evidence of that stage so far, the next step and its gate."""
    store = get_runtime().flags
    rows = []
    notes = []
    provided = {source.name for source in store.sources}  # sources whose flips pass no gate
    with get_runtime().engine.connect() as connection:
        for state in store.states():
            if state.source in provided and state.mode in (Mode.LIVE, Mode.ORM):
                # A provider's flip passed no gate of ours: say whether it would have.
                before = STAGES[STAGES.index(state.mode) - 1]
                passed = gate(
                    connection,
                    state.key,
                    before,
                    state.mode,
                    min_calls=args.min_calls,
                    window_minutes=args.window,
                )
                if not passed.allowed:
                    notes.append(
                        f"note: {state.key} is {state.mode.value} from {state.source} without "
                        f"the evidence its gate asks for: {passed.reason}"
                    )
            step = next_step(state.mode)
            seen = (
                evidence(connection, state.key, state.mode, args.window).summary(args.min_calls)
                if state.mode in (Mode.SHADOW, Mode.LIVE)
                else "-"
            )
            if step is None:
                verdict = "done: the ORM serves, nothing is compared"
            else:
                decision = gate(
                    connection,
                    state.key,
                    state.mode,
                    step,
                    min_calls=args.min_calls,
                    window_minutes=args.window,
                )
                verdict = (
                    f"{step.value}: allowed once compat verify is ready"
                    if decision.allowed
                    else f"{step.value}: not yet ({decision.reason})"
                )
            rows.append((state.key, state.mode.value, state.source, seen, verdict))
    table(rows, ("key", "stage", "source", "evidence", "next step"), out)
    for note in notes:
        out.write(f"{note}\n")
    if store.kill_switch_on:
        out.write("the kill switch is ON: every function is served by legacy\n")
    return EXIT_OK


def kill_switch(args: argparse.Namespace, out: TextIO) -> int:
    """Turn the shared kill switch on or off, in every process, audited."""
    on = args.state == "on"
    change = get_runtime().flags.kill_switch(on, reason=args.reason, by=args.by)
    if change is None:
        out.write(f"the kill switch was already {args.state}; nothing changed\n")
    else:
        out.write(
            f"kill switch {args.state} by {printable(change.changed_by)}: "
            f"{printable(change.reason)} (pushed to every process; the TTL poll is the fallback)\n"
        )
    return EXIT_OK


def flags_history(args: argparse.Namespace, out: TextIO) -> int:
    """The audited flag changes, newest first."""
    changes = get_runtime().flags.history(args.key, limit=args.limit)
    table(
        [
            (
                c.changed_at.isoformat(sep=" ", timespec="seconds"),
                c.key,
                f"{c.old_mode or '-'} -> {c.new_mode}{_at(c.new_percent)}",
                f"{c.new_sample_rate:g}",
                # Stored as given; shown with control characters escaped, long text cut.
                printable(c.changed_by),
                printable(c.reason),
            )
            for c in changes
        ],
        ("when (UTC)", "key", "change", "sample", "by", "reason"),
        out,
    )
    return EXIT_OK


def guard(args: argparse.Namespace, out: TextIO) -> int:
    """Watch every live and orm function and step back those past their limits; --once: one look."""
    runtime = get_runtime()
    policy = _policy(args, runtime.flags.keys)
    deadline = None if args.once else time.monotonic() + args.for_seconds
    while True:
        for trip in watch(runtime.engine, runtime.flags, policy):
            out.write(f"{trip.key}: {trip.old} -> {trip.new} by {GUARD}: {trip.change.reason}\n")
            out.flush()
        if deadline is None or time.monotonic() >= deadline:
            return EXIT_OK
        time.sleep(args.interval)


def _policy(args: argparse.Namespace, keys: Collection[str]) -> Policy:
    """The guard's limits from ``--threshold``, ``--min-orm-calls``, ``--error-margin``.

    Each option is given for every function (``N``) or for one (``KEY=N``);
    the last given wins, and a key's own value beats the one for every function.
    """
    options = {
        "threshold": args.threshold,
        "min_orm_calls": args.min_orm_calls,
        "error_margin": args.error_margin,
    }
    everyone: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {}
    for name, given in options.items():
        for key, value in given:
            if key is None:
                everyone[name] = value
            else:
                check_key(key, keys)
                own.setdefault(key, {})[name] = value
    default = dataclasses.replace(Limits(), **everyone)
    return Policy(
        default=default,
        per_key={key: dataclasses.replace(default, **values) for key, values in own.items()},
        window_minutes=args.window,
        baseline_days=args.baseline_days,
    )
