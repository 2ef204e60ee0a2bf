"""Mutation testing (not a test): cosmic-ray mutates orm/repositories, the tests judge.

Run from the repository root, after ``pip install -e '.[test,dev,mutation]'``:

    python -m bench.mutation                      # every mutant (about 55 minutes on 2 cores)
    python -m bench.mutation --workers 1          # one mutant at a time
    python -m bench.mutation --retest-survivors   # keep the kills, judge the survivors again
    python -m bench.mutation --retest-orm         # the same, by tests/orm alone
    python -m bench.mutation --report             # the last run's score and survivors again

Each mutant is one change to one module of orm/repositories (an operator, a
constant, a removed decorator...), applied in a copy of the work tree under
``mutants/`` (never here), and judged by ``pytest -x tests/parity`` in that
copy: killed when a parity test fails, survived when all pass. What parity lets
through is judged again by ``pytest -x tests/orm``. Changes inside annotations
are never run (``from __future__ import annotations``) and are skipped, not
counted; survivors registered in mutation_equivalents.toml are left out of the
last score. The score, the survivors and their diffs go to
``mutants/report.md``; docs/mutation.md explains the rest.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants"
REPORT = WORK / "report.md"
TARGET = "orm/repositories"
#: The output recorded for a mutant on a line the parity tests never run.
UNREACHED: Final = "not reached: the tests never run this statement (coverage)"
#: A mutant whose tests run this long (a loop that never ends) counts as killed, and is listed.
TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class Stage:
    """One pass over the mutants: the tests that judge them and the session that keeps verdicts."""

    name: str
    tests: str

    @property
    def session(self) -> Path:
        return WORK / f"{self.name}.sqlite"

    @property
    def config(self) -> Path:
        return WORK / f"{self.name}.toml"

    def command(self) -> str:
        # Run from the copy: ``-m`` puts its directory first on sys.path, so the
        # copy's (mutated) packages are imported, not the editable install's.
        return f"{sys.executable} -m pytest -x -q -n 0 -p no:cacheprovider {self.tests}"


#: The oracle, then the second opinion on what it lets through: code no facade
#: function reaches (class-level calls, keyset pages, COPY) has no legacy twin
#: to be compared with, and tests/orm checks it on its own.
STAGES: Final = (Stage("parity", "tests/parity"), Stage("orm", "tests/orm"))


@dataclass(frozen=True, slots=True)
class Mutant:
    """One mutation and what the parity tests made of it."""

    job_id: str
    module: str
    line: int
    operator: str
    outcome: str  # under the parity tests: killed, survived, timeout, incompetent, skipped
    diff: str
    #: Under tests/orm, for a parity survivor: killed, survived, timeout...
    second: str | None = None
    #: Why it is equivalent, when mutation_equivalents.toml says it is.
    equivalent: str | None = None
    #: The function (or class) it is in, as cosmic-ray names it.
    function: str = ""

    @property
    def survived(self) -> bool:
        """Whether it got through both stages (or through parity, with no second verdict)."""
        return self.outcome in ("survived", "not reached") and self.second not in _KILLED


#: The mutants no caller can tell from the code as written, each with the reason.
EQUIVALENTS: Final = Path(__file__).with_name("mutation_equivalents.toml")


@dataclass(frozen=True, slots=True)
class Equivalent:
    """Mutants of ``operators`` (all, when empty) on every line of ``module`` reading ``line``.

    With ``function``, only on such lines inside that function (a ``*,`` line
    is in many signatures).
    """

    module: str
    line: str
    operators: tuple[str, ...]
    why: str
    function: str | None = None

    def covers(self, operator: str, function: str) -> bool:
        if self.function is not None and self.function != function:
            return False
        return not self.operators or operator.removeprefix("core/") in self.operators


def read_equivalents(text: str) -> list[Equivalent]:
    """The entries of mutation_equivalents.toml: module, line (its text), operators, why."""
    return [
        Equivalent(
            entry["module"],
            entry["line"].strip(),
            tuple(entry.get("operators", ())),
            entry["why"],
            entry.get("function"),
        )
        for entry in tomllib.loads(text)["equivalent"]
    ]


class Classifier:
    """Which registered reason, if any, makes a mutant equivalent; lines matched by their text.

    Matching the text, not the line number, keeps an entry right when code
    above it moves; an entry whose line is gone matches nothing (and the
    mutant counts as a survivor again).
    """

    def __init__(self, equivalents: list[Equivalent], source: Path = ROOT) -> None:
        self._by_line: dict[tuple[str, str], list[Equivalent]] = {}
        for entry in equivalents:
            self._by_line.setdefault((entry.module, entry.line), []).append(entry)
        self.entries = equivalents
        self._source = source
        self._sources: dict[str, list[str]] = {}
        #: The entries that covered a mutant so far: the others are stale or misspelt.
        self.used: set[Equivalent] = set()

    def why(self, module: str, line: int, operator: str, function: str = "") -> str | None:
        if module not in self._sources:
            self._sources[module] = (self._source / module).read_text().splitlines()
        lines = self._sources[module]
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        for entry in self._by_line.get((module, text), []):
            if entry.covers(operator, function):
                self.used.add(entry)
                return entry.why
        return None


def classifier() -> Classifier:
    """The registered equivalents, matched against the code the last run mutated.

    That is the run's copy of the tree (its line numbers are the ones the
    sessions hold), or the work tree before any run.
    """
    run_copy = WORK / "worker-0"
    return Classifier(
        read_equivalents(EQUIVALENTS.read_text()), run_copy if run_copy.exists() else ROOT
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mutation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2, help="mutants tested side by side")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--retest-survivors",
        action="store_true",
        help="keep the last run's kills; test its survivors (and what it did not reach) again "
        "(after adding tests: a kill by a test since weakened would stand)",
    )
    what.add_argument(
        "--retest-orm",
        action="store_true",
        help="keep the parity verdicts and tests/orm's kills; judge the rest by tests/orm again "
        "(after a change to tests/orm alone)",
    )
    what.add_argument("--report", action="store_true", help="only report the last run")
    args = parser.parse_args(argv)
    if not args.report:
        if args.workers < 1:
            parser.error(f"--workers must be 1 or more, not {args.workers}")
        if args.retest_orm and not STAGES[0].session.exists():
            parser.error("--retest-orm needs a run whose parity stage finished")
        start = "fresh" if not (args.retest_survivors or args.retest_orm) else "survivors"
        run(args.workers, start="orm" if args.retest_orm else start)
    known = classifier()
    mutants = read_sessions(known)
    unused = [entry for entry in known.entries if entry not in known.used]
    REPORT.write_text(report(mutants, unused))
    print(summary(mutants, unused))
    print(f"survivors and their diffs: {REPORT.relative_to(ROOT)}")
    return 0


def run(workers: int, *, start: str) -> None:
    """Copy the tree once per worker, make every mutant, test them: parity first, then tests/orm.

    ``start`` is ``fresh`` (every mutant), ``survivors`` (keep the kills, judge
    the rest again) or ``orm`` (keep the parity verdicts, judge their
    survivors by tests/orm again).
    """
    WORK.mkdir(exist_ok=True)
    copies = [_copy_tree(WORK / f"worker-{i}") for i in range(workers)]
    ports = [_free_port() for _ in copies]
    for stage in STAGES:
        stage.config.write_text(_config(stage, ports))
    parity, orm = STAGES
    _check_fingerprint(copies[0], fresh=start == "fresh" or not parity.session.exists())
    # What tests/orm killed stays killed on a retest: the code under test is the same.
    kept = _verdicts(orm.session, "KILLED") if start != "fresh" and orm.session.exists() else []
    if start == "fresh" or not parity.session.exists():
        parity.session.unlink(missing_ok=True)
        orm.session.unlink(missing_ok=True)
        _cosmic_ray("init", str(parity.config), str(parity.session), cwd=copies[0])
        skipped = skip_annotations(parity.session, copies[0])
        print(f"{skipped} mutants inside annotations skipped (never evaluated)")
    elif start == "survivors":
        _forget_survivors(parity.session)
    if start != "orm":
        missing = _baseline(parity, copies[0])
        unreached = mark_unreached(parity.session, copies[0], missing)
        print(f"{unreached} mutants on lines the parity tests never run: survived, without a run")
    _baseline(orm, copies[0])
    with _workers(copies, ports):
        started = time.monotonic()
        if start != "orm":
            _cosmic_ray("exec", str(parity.config), str(parity.session), cwd=copies[0])
        # What the parity tests let through, judged again by the ORM side's own tests.
        shutil.copy2(parity.session, orm.session)
        _forget_survivors(orm.session)
        _restore(orm.session, kept)
        _cosmic_ray("exec", str(orm.config), str(orm.session), cwd=copies[0])
    print(f"tested in {(time.monotonic() - started) / 60:.0f} min")


def _fingerprint(tree: Path) -> str:
    """A digest of the code under test in ``tree``: what the sessions' positions refer to."""
    digest = hashlib.sha256()
    for path in sorted((tree / TARGET).rglob("*.py")):
        digest.update(path.relative_to(tree).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _check_fingerprint(copy: Path, *, fresh: bool) -> None:
    """Refuse a retest once the code under test changed: its mutants would be other mutants."""
    recorded = WORK / "target.sha256"
    current = _fingerprint(copy)
    if not fresh and recorded.exists() and recorded.read_text().strip() != current:
        sys.exit(
            f"{TARGET} changed since the run whose verdicts a retest keeps; "
            "start a fresh run: python -m bench.mutation"
        )
    recorded.write_text(current + "\n")


def _forget_survivors(session: Path) -> None:
    """Drop the survivors' verdicts, registered equivalents' too: the next exec tests them."""
    with contextlib.closing(sqlite3.connect(session)) as db, db:
        db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")


_RESULT_COLUMNS: Final = "job_id, worker_outcome, output, test_outcome, diff"


def _verdicts(session: Path, outcome: str) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(session)) as db:
        return db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM work_results WHERE test_outcome = ?",  # noqa: S608
            (outcome,),
        ).fetchall()


def _restore(session: Path, verdicts: list[tuple[str, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(session)) as db, db:
        db.executemany(
            f"INSERT OR REPLACE INTO work_results ({_RESULT_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?)",
            verdicts,
        )


def _copy_tree(target: Path) -> Path:
    """The work tree's files (tracked, and new ones git does not ignore) under ``target``."""
    if target.exists():
        shutil.rmtree(target)
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _config(stage: Stage, ports: list[int]) -> str:
    urls = ", ".join(f"'http://127.0.0.1:{port}'" for port in ports)
    return (
        "[cosmic-ray]\n"
        f'module-path = "{TARGET}"\n'
        f"timeout = {TIMEOUT_S}\n"
        "excluded-modules = []\n"
        f'test-command = "{stage.command()}"\n\n'
        '[cosmic-ray.distributor]\nname = "http"\n\n'
        f"[cosmic-ray.distributor.http]\nworker-urls = [{urls}]\n"
    )


def _cosmic_ray(*args: str, cwd: Path) -> None:
    subprocess.run([_bin("cosmic-ray"), *args], cwd=cwd, check=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _baseline(stage: Stage, copy: Path) -> dict[str, set[int]]:
    """Run the stage's tests on the unmutated code, under coverage: the lines they never run.

    They must pass: otherwise every mutant would count as killed.
    """
    print(f"baseline: {stage.command()}")
    data = WORK / f"{stage.name}.coverage"
    # As cosmic-ray runs each mutant's tests: no .pyc that could outlive a mutation.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COVERAGE_FILE": str(data)}
    python, _, pytest = stage.command().partition(" -m ")
    covered = [python, "-m", "coverage", "run", f"--include={TARGET}/*", "-m", *pytest.split()]
    done = subprocess.run(covered, cwd=copy, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{stage.tests} fails without any mutant (exit {done.returncode}); fix that first")
    report = WORK / f"{stage.name}-coverage.json"
    subprocess.run(
        [python, "-m", "coverage", "json", "-q", "-o", str(report)], cwd=copy, env=env, check=True
    )
    files = json.loads(report.read_text())["files"]
    return {
        str((copy / name).resolve().relative_to(copy.resolve())): set(measured["missing_lines"])
        for name, measured in files.items()
    }


def mark_unreached(session: Path, copy: Path, missing: dict[str, set[int]]) -> int:
    """Give mutants in statements the tests never run their verdict, survived, without a run."""
    with contextlib.closing(sqlite3.connect(session)) as db, db:
        pending = db.execute(
            "SELECT job_id, module_path, start_pos_row, start_pos_col FROM mutation_specs "
            "WHERE job_id NOT IN (SELECT job_id FROM work_results)"
        ).fetchall()
        trees = {module: ast.parse((copy / module).read_text()) for _, module, *_ in pending}
        unreached = [
            job
            for job, module, row, col in pending
            if _statement_line(trees[module], (row, col)) in missing.get(module, set())
        ]
        db.executemany(
            "INSERT INTO work_results (worker_outcome, test_outcome, output, job_id) "
            "VALUES ('NORMAL', 'SURVIVED', ?, ?)",
            [(UNREACHED, job) for job in unreached],
        )
    return len(unreached)


def _statement_line(tree: ast.Module, position: tuple[int, int]) -> int | None:
    """The first line of the innermost statement around ``position``: what coverage reports."""
    best: ast.stmt | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or node.end_lineno is None:
            continue
        start = (node.lineno, node.col_offset)
        end = (node.end_lineno, node.end_col_offset or 0)
        if start <= position < end and (best is None or start > (best.lineno, best.col_offset)):
            best = node
    return None if best is None else best.lineno


@contextlib.contextmanager
def _workers(copies: list[Path], ports: list[int]) -> Iterator[None]:
    """One cosmic-ray http worker per copy of the tree, each applying mutants in its copy."""
    logs = [(copy / "worker.log").open("w") for copy in copies]
    workers = [
        subprocess.Popen(
            [_bin("cosmic-ray"), "http-worker", "--port", str(port)],
            cwd=copy,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for copy, port, log in zip(copies, ports, logs, strict=True)
    ]
    try:
        for port in ports:
            _wait_for(port)
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        for log in logs:
            log.close()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            sys.exit(f"the cosmic-ray worker on port {port} did not start; see its worker.log")
        time.sleep(0.2)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are: (start, end) as (line, column), end exclusive."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None and annotation.end_lineno is not None:
                start = (annotation.lineno, annotation.col_offset)
                end = (annotation.end_lineno, annotation.end_col_offset or 0)
                spans.append((start, end))
    return spans


def skip_annotations(session: Path, copy: Path) -> int:
    """Mark mutants inside annotations as skipped: with postponed annotations they never run."""
    with contextlib.closing(sqlite3.connect(session)) as db, db:
        specs = db.execute(
            "SELECT job_id, module_path, start_pos_row, start_pos_col, end_pos_row, end_pos_col "
            "FROM mutation_specs"
        ).fetchall()
        spans = {
            module: annotation_spans((copy / module).read_text())
            for module in {s[1] for s in specs}
        }
        inside = [
            job
            for job, module, *position in specs
            if any(
                start <= (position[0], position[1]) and (position[2], position[3]) <= end
                for start, end in spans[module]
            )
        ]
        db.executemany(
            "INSERT OR REPLACE INTO work_results (worker_outcome, test_outcome, job_id) "
            "VALUES ('SKIPPED', NULL, ?)",
            [(job,) for job in inside],
        )
    return len(inside)


def read_sessions(known: Classifier) -> list[Mutant]:
    """Every mutant, with its parity verdict and, for a parity survivor, the tests/orm one."""
    parity, orm = STAGES
    if not parity.session.exists():
        where = parity.session.relative_to(ROOT)
        sys.exit(f"no mutation run yet ({where}); run python -m bench.mutation")
    second = {}
    if orm.session.exists():
        second = {m.job_id: m.outcome for m in _read(orm.session)}
    mutants = _read(parity.session)
    return [
        replace(
            m,
            second=second.get(m.job_id) if m.outcome in ("survived", "not reached") else None,
            equivalent=known.why(m.module, m.line, m.operator, m.function),
        )
        for m in mutants
    ]


def _read(session: Path) -> list[Mutant]:
    with contextlib.closing(sqlite3.connect(session)) as db:
        rows = db.execute(
            "SELECT s.job_id, s.module_path, s.start_pos_row, s.operator_name, s.definition_name, "
            "r.worker_outcome, r.test_outcome, r.output, r.diff "
            "FROM mutation_specs s LEFT JOIN work_results r USING (job_id) "
            "ORDER BY s.module_path, s.start_pos_row, s.start_pos_col, s.operator_name"
        ).fetchall()
    return [
        Mutant(
            job,
            module,
            line,
            operator,
            _outcome(worker, test, output or ""),
            diff or "",
            function=function or "",
        )
        for job, module, line, operator, function, worker, test, output, diff in rows
    ]


def _outcome(worker: str | None, test: str | None, output: str) -> str:
    if output == UNREACHED:
        return "not reached"
    if worker is None:
        return "not run"
    if worker == "SKIPPED":
        return "skipped"
    if test == "KILLED" and output.startswith("timeout"):
        return "timeout"
    if test is None:
        return f"worker {worker.lower()}"
    return test.lower()


#: What a second opinion must say for a parity survivor to count as killed (not "not run").
_KILLED: Final = ("killed", "timeout", "incompetent")
_JUDGED: Final = ("killed", "timeout", "survived", "not reached", "incompetent")


def score(
    mutants: list[Mutant],
    *,
    second_opinion: bool = False,
    without_equivalent: bool = False,
    reached_only: bool = False,
) -> tuple[int, int]:
    """(killed, judged): a timeout counts as killed; skipped and not run are not judged.

    With ``second_opinion``, a parity survivor that tests/orm kills counts as
    killed; ``without_equivalent`` leaves the registered survivors out of both;
    ``reached_only`` the mutants on lines the parity tests never run.
    """
    judged = [
        m
        for m in mutants
        if m.outcome in _JUDGED
        and not (without_equivalent and m.equivalent and m.survived)
        and not (reached_only and m.outcome == "not reached")
    ]
    survived = [
        m
        for m in judged
        if (m.survived if second_opinion else m.outcome in ("survived", "not reached"))
    ]
    return len(judged) - len(survived), len(judged)


#: The score lines: what kills, and what is left out of the count.
_SCORES: Final[tuple[tuple[str, dict[str, bool]], ...]] = (
    ("parity tests", {}),
    (
        "parity tests, on the lines they run, equivalent mutants left out",
        {"without_equivalent": True, "reached_only": True},
    ),
    ("then tests/orm", {"second_opinion": True}),
    (
        "then tests/orm, equivalent mutants left out",
        {"second_opinion": True, "without_equivalent": True},
    ),
)


def summary(mutants: list[Mutant], unused: list[Equivalent]) -> str:
    counts: dict[str, int] = {}
    for mutant in mutants:
        counts[mutant.outcome] = counts.get(mutant.outcome, 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    lines = []
    for label, options in _SCORES:
        killed, judged = score(mutants, **options)
        percent = 100 * killed / judged if judged else 0.0
        lines.append(f"{label}: {percent:.1f} % killed ({killed} of {judged})")
    equivalent = [m for m in mutants if m.equivalent and m.survived]
    lines.append(f"survivors registered as equivalent ({EQUIVALENTS.name}): {len(equivalent)}")
    if unused:
        lines.append(
            f"entries that cover no mutant (stale or misspelt, listed below): {len(unused)}"
        )
    return "\n".join([*lines, f"by the parity tests: {detail}"])


def report(mutants: list[Mutant], unused: list[Equivalent]) -> str:
    lines = [f"# Mutation run of {TARGET}", "", *summary(mutants, unused).splitlines(), ""]
    if unused:
        lines += ["## entries that cover no mutant", ""]
        lines += [f"- {entry.module}: `{entry.line}` {list(entry.operators)}" for entry in unused]
        lines.append("")
    judged = [m for m in mutants if m.outcome in _JUDGED]
    groups = [
        ("survived both stages", [m for m in judged if m.survived and not m.equivalent]),
        *(
            (f"equivalent: {why}", [m for m in judged if m.survived and m.equivalent == why])
            for why in sorted({m.equivalent for m in judged if m.equivalent and m.survived})
        ),
        (
            "registered as equivalent, yet killed (the entry covers more mutants than it must)",
            [m for m in judged if m.equivalent and not m.survived],
        ),
        ("killed by tests/orm only", [m for m in judged if m.second in _KILLED]),
        ("timeout", [m for m in judged if m.outcome == "timeout"]),
        ("not run", [m for m in mutants if m.outcome in ("not run", "worker exception")]),
    ]
    for title, listed in groups:
        if not listed:
            continue
        lines += [f"## {title} ({len(listed)})", ""]
        for mutant in listed:
            second = "" if mutant.second is None else f", tests/orm: {mutant.second}"
            lines += [
                f"### {mutant.module}:{mutant.line} {mutant.operator} "
                f"({mutant.job_id}, parity: {mutant.outcome}{second})",
                "",
                "```diff",
                mutant.diff.strip(),
                "```",
                "",
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
