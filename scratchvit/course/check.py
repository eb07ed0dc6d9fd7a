"""`scratchvit course check`: is every task sound? Five parts, each on fresh copies of the repository.

(i)   The solution copy (nothing blanked, the fast tier left out) passes every test. Its regions are
      instrumented, so the run also records which tasks' code each test reaches, and how long each takes.
(ii)  The all-blank copy imports and collects; each task's marker has at least one failure, and every
      failure is a NotImplementedError of that task or of one it builds on (a backward test meets the
      blank topological order of task 0.1 before its own op); capstone tests may fail any way (the
      command turns the error into exit code 2); the framework tests pass.
(iii) Each task T blanked alone: `-m T` fails with T's NotImplementedError, and the tests of every task
      that does not build on T pass. They are run over T's test files; for the rest of the suite the
      trace of (i) shows that no such test reaches T's code, so blanking T cannot change its result.
(iv)  Static: every BEGIN has its END and names the code it lies in, the table's regions are the
      source's, every op-table entry belongs to exactly one task, every test has exactly one course
      marker and the markers are registered, every op with a backward task keeps its derivation in the
      last paragraph of its docstring (derivations.py), and neither a solution line nor a derivation
      survives in the all-blank copy.
(v)   Each task's tests finish within three times its expected seconds (measured in (i)).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..check.op_table import OPS
from . import regions as region_tools
from .derivations import DerivationError, check_derivations, derivation_texts
from .export import export
from .runs import PytestRun, course_marker_of, run_pytest
from .tasks import BY_ID, BY_MARKER, CAPSTONE, COURSE_MARKERS, FRAMEWORK, TASKS, closure

TIME_FACTOR = 3
SOLUTION_LINE_MIN = 20  # shorter lines ("return grad") may well appear elsewhere by chance
RUN_TIMEOUT = 1500


@dataclass
class Part:
    """The result of one part: passed, and a line per problem."""

    name: str
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class CheckResult:
    parts: list
    measured: dict  # task id -> seconds its tests took in the solution copy

    @property
    def passed(self) -> bool:
        return all(part.passed for part in self.parts)


def _ran(entry: dict) -> bool:
    return entry.get("outcome") in ("passed", "failed", "skipped")


def _failures_of(run: PytestRun) -> list:
    return [entry for entry in run.tests.values() if entry.get("outcome") == "failed"]


def part_solution(run: PytestRun) -> Part:
    part = Part("(i) the solution copy passes every test")
    if run.timed_out:
        part.problems.append(f"the run passed its {RUN_TIMEOUT} s limit")
    for entry in _failures_of(run):
        part.problems.append(f"{entry['nodeid']}: {entry.get('other') or entry.get('named')}")
    if run.returncode not in (0,) and not part.problems:
        part.problems.append(f"pytest exited {run.returncode}: {run.output.strip().splitlines()[-1:]}")
    counts = _outcome_counts(run)
    part.notes.append(f"{counts['passed']} passed, {counts['skipped']} skipped in {run.seconds:.0f} s")
    return part


def _outcome_counts(run: PytestRun) -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for entry in run.tests.values():
        if entry.get("outcome") in counts:
            counts[entry["outcome"]] += 1
    return counts


def part_all_blank(run: PytestRun, import_problems: list) -> Part:
    part = Part("(ii) the all-blank copy imports, collects, and fails only where a task is blank")
    part.problems += import_problems
    failed_markers = set()
    for entry in run.tests.values():
        if not _ran(entry) and not entry["nodeid"].startswith("collect::"):
            continue
        marker = course_marker_of(entry)
        if entry["nodeid"].startswith("collect::"):
            part.problems.append(f"{entry['nodeid']} does not collect: {entry.get('other', '')[-200:]}")
            continue
        if entry["outcome"] != "failed":
            continue
        failed_markers.add(marker)
        named, other = set(entry.get("named", [])), entry.get("other", "")
        if marker == FRAMEWORK:
            part.problems.append(f"framework test {entry['nodeid']} fails: {other or sorted(named)}")
        elif marker == CAPSTONE:  # a capstone needs everything: any failure of it is allowed here
            continue
        elif other or not named:
            part.problems.append(f"{entry['nodeid']} ({marker}) fails with something else: {other}")
        elif marker in BY_MARKER and not named <= closure(BY_MARKER[marker].id):
            part.problems.append(f"{entry['nodeid']} ({marker}) fails on tasks {sorted(named)}, outside its own")
    for task in TASKS:
        if task.marker not in failed_markers:
            part.problems.append(f"no test of task {task.id} ({task.marker}) fails with everything blank")
    counts = _outcome_counts(run)
    part.notes.append(f"{counts['failed']} failed, {counts['passed']} passed, {counts['skipped']} skipped")
    return part


def _tests_of(solution: PytestRun, marker: str) -> list:
    return [entry for entry in solution.tests.values() if _ran(entry) and course_marker_of(entry) == marker]


def _unaffected(task_id: str, marker: str | None) -> bool:
    """Must a test with `marker` pass when task `task_id` alone is blank?"""
    if marker == FRAMEWORK:
        return True
    return marker in BY_MARKER and task_id not in closure(BY_MARKER[marker].id)


def selection_for(task, solution: PytestRun) -> list:
    """Node ids to run with `task` blanked alone: its own tests, and every test of the files they are
    in but the op table's (whose other entries the trace covers)."""
    own = [entry["nodeid"] for entry in _tests_of(solution, task.marker)]
    files = {nodeid.split("::")[0] for nodeid in own} - {"tests/check/test_op_table.py"}
    return sorted(files) + [nodeid for nodeid in own if nodeid.split("::")[0] not in files]


def part_each_blank(root: Path, solution: PytestRun, workers: int, scratch: Path, progress=print) -> Part:
    part = Part("(iii) each task blanked alone fails its own tests and no other")
    for entry in solution.tests.values():  # the trace: who reaches a task's code
        marker = course_marker_of(entry)
        for hit in entry.get("hits", []):
            if _ran(entry) and _unaffected(hit, marker):
                part.problems.append(f"{entry['nodeid']} ({marker}) runs the code of task {hit}, not one it builds on")

    def one(task) -> list:
        copy = scratch / f"blank-{task.id}"
        export(root, copy, blank={task.id}, init_git=False)
        run = run_pytest(copy, selection_for(task, solution), timeout=RUN_TIMEOUT)
        shutil.rmtree(copy, ignore_errors=True)
        problems, own_failed = [], 0
        for entry in run.tests.values():
            if not _ran(entry) and not entry["nodeid"].startswith("collect::"):
                continue
            marker = course_marker_of(entry)
            if entry["nodeid"].startswith("collect::"):
                problems.append(f"task {task.id} blank: {entry['nodeid']} does not collect")
            elif marker == task.marker and entry["outcome"] == "failed":
                own_failed += 1
                if entry.get("other") or set(entry.get("named", [])) != {task.id}:
                    problems.append(f"task {task.id} blank: {entry['nodeid']} fails otherwise: {entry.get('other')}")
            elif entry["outcome"] == "failed" and _unaffected(task.id, marker):
                problems.append(f"task {task.id} blank: {entry['nodeid']} ({marker}) fails too")
        if not own_failed:
            problems.append(f"task {task.id} blank: no test of {task.marker} fails")
        if run.timed_out:
            problems.append(f"task {task.id} blank: the run passed its {RUN_TIMEOUT} s limit")
        return problems + [f"@{task.id} {run.seconds:.0f} s, {own_failed} of its tests fail"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for number, lines in enumerate(pool.map(one, TASKS), start=1):
            part.problems += [line for line in lines if not line.startswith("@")]
            part.notes += [line[1:] for line in lines if line.startswith("@")]
            progress(f"  [{number}/{len(TASKS)}] {part.notes[-1]}")
    return part


def _registered_markers(root: Path) -> tuple:
    """The markers pyproject.toml registers, and whether --strict-markers is on."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^markers = \[(.*?)^\]", text, re.M | re.S)
    names = set(re.findall(r'^\s*"(\w+):', block.group(1), re.M)) if block else set()
    return names, bool(re.search(r"^addopts = .*--strict-markers", text, re.M))


def part_static(root: Path, blank_copy: Path, collected: PytestRun) -> Part:
    part = Part("(iv) regions, op table, markers, and no solution text in the student copy")
    try:
        found = region_tools.find_regions(root)
    except region_tools.RegionError as error:
        part.problems.append(str(error))
        return part
    part.problems += region_tools.check_regions(root, found)
    part.problems += check_derivations(root, found)
    in_source: dict = {}
    for region in found:
        if region.task not in BY_ID:
            part.problems.append(f"{region.path}:{region.begin}: region of task {region.task}, not in the table")
        in_source.setdefault(region.task, set()).add(region.label)
    for task in TASKS:
        if set(task.regions) != in_source.get(task.id, set()):
            part.problems.append(
                f"task {task.id}: the table names regions {sorted(set(task.regions) - in_source.get(task.id, set()))} "
                f"the source lacks, and the source has {sorted(in_source.get(task.id, set()) - set(task.regions))}"
            )
    owners: dict = {}
    for task in TASKS:
        for op in task.ops:
            owners.setdefault(op, []).append(task.id)
    for name in OPS:
        if len(owners.get(name, [])) != 1:
            part.problems.append(f"op-table entry {name} belongs to tasks {owners.get(name, [])}, not exactly one")
    part.problems += [f"task table names op {name}, not in the op table" for name in owners if name not in OPS]
    for entry in collected.tests.values():
        if entry["nodeid"].startswith("collect::"):
            part.problems.append(f"{entry['nodeid']} does not collect")
        elif len(entry.get("markers", [])) != 1:
            part.problems.append(f"{entry['nodeid']} has course markers {entry.get('markers')}, not exactly one")
    registered, strict = _registered_markers(root)
    if not set(COURSE_MARKERS) <= registered:
        part.problems.append(f"pyproject.toml does not register {sorted(set(COURSE_MARKERS) - registered)}")
    if not strict:
        part.problems.append("pyproject.toml's addopts lacks --strict-markers")
    part.problems += surviving_solution_text(root, found, blank_copy)
    part.notes.append(f"{len(found)} regions in {len({r.path for r in found})} files, {len(collected.tests)} tests")
    return part


def surviving_solution_text(root: Path, found: list, copy: Path) -> list:
    """Lines of solution code (long enough to be telling, and found nowhere outside the regions in the
    repository's Python), and the derivations of the ops' docstrings, that the student copy still holds."""
    inside = {line for region in found for line in region_tools.solution_lines(root, region)}
    inside = {line for line in inside if len(line) >= SOLUTION_LINE_MIN}
    region_spans = {}
    for region in found:
        region_spans.setdefault(region.path, []).append((region.begin, region.end))
    outside = set()
    for path in (root / "scratchvit").rglob("*.py"):
        name = path.relative_to(root).as_posix()
        spans = region_spans.get(name, [])
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not any(begin <= number <= end for begin, end in spans):
                outside.add(line.strip())
    telling = inside - outside
    try:
        derivations = derivation_texts(root, found)
    except DerivationError:
        derivations = []  # check_derivations names the class
    problems = []
    for path in copy.rglob("*"):
        if not path.is_file() or ".git" in path.parts or path.suffix not in (".py", ".md", ".ipynb", ".txt", ".yml"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in sorted(telling & {line.strip() for line in text.splitlines()}):
            problems.append(f"{path.relative_to(copy)} holds solution text: {line[:80]}")
        if path.suffix == ".py":
            flat = " ".join(text.split())
            for derivation in derivations:
                if derivation in flat:
                    problems.append(f"{path.relative_to(copy)} holds the derivation: {derivation[:80]}")
    return problems


def part_timing(solution: PytestRun) -> tuple:
    part = Part(f"(v) each task's tests finish within {TIME_FACTOR} x its expected seconds")
    measured = {}
    for task in TASKS:
        measured[task.id] = sum(entry.get("seconds", 0.0) for entry in _tests_of(solution, task.marker))
        if measured[task.id] > TIME_FACTOR * task.expected_seconds:
            part.problems.append(
                f"task {task.id}: {measured[task.id]:.1f} s, over {TIME_FACTOR} x {task.expected_seconds:g} s"
            )
    return part, measured


def _import_problems(copy: Path) -> list:
    """The all-blank copy must import every module of its package."""
    run = run_pytest(copy, ["--co", "-q", "tests/test_layers.py"], timeout=300)
    problems = [] if run.returncode == 0 else [f"the all-blank copy does not collect: {run.output[-300:]}"]
    probe = (
        "import importlib, pkgutil, scratchvit\n"
        "assert scratchvit.__file__.startswith(__import__('os').getcwd()), scratchvit.__file__\n"
        "for m in pkgutil.walk_packages(scratchvit.__path__, 'scratchvit.'):\n"
        "    if m.name not in ('scratchvit.__main__', 'scratchvit.course.report'): importlib.import_module(m.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env=dict(os.environ, PYTHONPATH=str(copy)),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        problems.append(f"the all-blank copy does not import: {done.stderr.strip().splitlines()[-1:]}")
    return problems


def run_check(root: Path, workers: int = 2, keep: Path | None = None, progress=print) -> CheckResult:
    """All five parts; copies go to a temporary folder (or `keep`, left in place)."""
    scratch = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="scratchvit-course-check-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        solution_copy, blank_copy = scratch / "solution", scratch / "all-blank"
        for folder in (solution_copy, blank_copy):
            shutil.rmtree(folder, ignore_errors=True)
        export(root, solution_copy, solution=True, instrument=True, init_git=False)
        export(root, blank_copy, module=None, init_git=False)
        progress("course check: the solution copy and the all-blank copy, side by side")
        with ThreadPoolExecutor(max_workers=2) as pool:
            solution_future = pool.submit(run_pytest, solution_copy, [], RUN_TIMEOUT)
            blank_future = pool.submit(run_pytest, blank_copy, [], RUN_TIMEOUT)
            collected_future = pool.submit(run_pytest, root, [], 300, True)
            solution, blank, collected = solution_future.result(), blank_future.result(), collected_future.result()
        parts = [part_solution(solution), part_all_blank(blank, _import_problems(blank_copy))]
        progress("course check: each task blanked alone")
        parts.append(part_each_blank(root, solution, workers, scratch, progress))
        parts.append(part_static(root, blank_copy, collected))
        timing, measured = part_timing(solution)
        parts.append(timing)
        return CheckResult(parts, measured)
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


def report_lines(result: CheckResult) -> list:
    """The table of tasks with their measured seconds, then each part's verdict and problems."""
    lines = [f"{'task':<5} {'points':>6} {'expected s':>10} {'measured s':>10}  title"]
    for task in TASKS:
        measured = result.measured.get(task.id, float("nan"))
        lines.append(f"{task.id:<5} {task.points:>6} {task.expected_seconds:>10g} {measured:>10.1f}  {task.title}")
    for part in result.parts:
        lines.append(
            f"{'pass' if part.passed else 'FAIL'}  {part.name}" + (f": {'; '.join(part.notes)}" if part.notes else "")
        )
        lines += [f"      {problem}" for problem in part.problems[:40]]
        if len(part.problems) > 40:
            lines.append(f"      ... and {len(part.problems) - 40} more")
    return lines
