"""`scratchvit course grade DIR`: run each task's tests in a student copy, each with a time limit, and
write grades.json and grades.csv there. A task earns its points when its tests pass in time: none fails
and at least one passes (a test skipped for want of an optional package counts neither way)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from ..io.files import write_atomically
from .runs import course_marker_of, run_pytest
from .tasks import BY_ID, TASKS

TIME_FACTOR = 3
MIN_TIMEOUT = 60.0  # a task's limit is TIME_FACTOR x its expected seconds, never less than this
CSV_FIELDS = ("task", "title", "points", "earned", "status", "passed", "failed", "skipped", "seconds", "limit_seconds")


def grade(copy: Path, out: Path | None = None, progress=print, task_ids: list | None = None) -> dict:
    """Grade the copy at `copy` (every task, or those of `task_ids`); grades.json and grades.csv go to
    `out` (default: the copy)."""
    copy = Path(copy).resolve()
    if not (copy / "tests").is_dir() or not (copy / "scratchvit").is_dir():
        raise ValueError(f"course grade: {copy} is not a course copy (it needs scratchvit/ and tests/)")
    unknown = [task_id for task_id in task_ids or () if task_id not in BY_ID]
    if unknown:
        raise ValueError(f"--task must name tasks of the table ({', '.join(BY_ID)}), got {', '.join(unknown)}")
    tasks = [task for task in TASKS if task_ids is None or task.id in task_ids]
    out = copy if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    collected = run_pytest(copy, [], timeout=600, collect_only=True)
    files_of: dict = {}
    for entry in collected.tests.values():
        files_of.setdefault(course_marker_of(entry), set()).add(entry["nodeid"].split("::")[0])
    rows = []
    for number, task in enumerate(tasks, start=1):
        limit = max(MIN_TIMEOUT, TIME_FACTOR * task.expected_seconds)
        files = sorted(files_of.get(task.marker, ()))
        if not files:
            rows.append(_row(task, "no tests", (0, 0, 0), 0.0, limit))
            continue
        run = run_pytest(copy, ["-m", task.marker, *files], timeout=limit)
        ran = [e for e in run.tests.values() if course_marker_of(e) == task.marker and e["outcome"] != "collected"]
        outcomes = Counter(e["outcome"] for e in ran)
        passed, failed, skipped = outcomes["passed"], outcomes["failed"], outcomes["skipped"]
        if run.timed_out:
            status = "timeout"
        elif run.returncode == 0 and failed == 0 and passed:
            status = "passed"
        else:
            status = "failed"
        rows.append(_row(task, status, (passed, failed, skipped), run.seconds, limit))
        progress(
            f"[{number}/{len(tasks)}] task {task.id}: {status} "
            f"({passed} passed, {failed} failed, {skipped} skipped, {run.seconds:.0f} s)"
        )
    grades = {
        "copy": str(copy),
        "earned": sum(row["earned"] for row in rows),
        "points": sum(row["points"] for row in rows),
        "tasks": rows,
    }
    write_atomically(out / "grades.json", lambda file: file.write((json.dumps(grades, indent=2) + "\n").encode()))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows({key: row[key] for key in CSV_FIELDS} for row in rows)
    write_atomically(out / "grades.csv", lambda file: file.write(table.getvalue().encode()))
    return grades


def _row(task, status: str, counts: tuple, seconds: float, limit: float) -> dict:
    """One task's line of the grades; counts: (passed, failed, skipped) tests."""
    passed, failed, skipped = counts
    return {
        "task": task.id,
        "title": task.title,
        "points": task.points,
        "earned": task.points if status == "passed" else 0,
        "status": status,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "seconds": round(seconds, 2),
        "limit_seconds": limit,
    }
