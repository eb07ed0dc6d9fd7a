"""Running pytest in a course copy and reading back what each test did (report.py's JSON lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PytestRun:
    """One pytest run: its exit code, seconds, whether it hit its timeout, and the tests by node id."""

    returncode: int
    seconds: float
    timed_out: bool
    tests: dict = field(default_factory=dict)
    output: str = ""


def run_pytest(copy: Path, args: list, timeout: float | None = None, collect_only: bool = False) -> PytestRun:
    """`python -m pytest -q --tb=short -p no:cacheprovider -p scratchvit.course.report *args` inside `copy`,
    on the copy's own package (PYTHONPATH), one BLAS thread (runs go side by side), and hypothesis's
    `course` profile (tests/conftest.py: the ci profile without shrinking, since a blank task fails on
    the first example and shrinking it 500 times over teaches nothing)."""
    with tempfile.TemporaryDirectory(prefix="scratchvit-course-") as scratch:
        report = Path(scratch) / "report.jsonl"
        environment = dict(
            os.environ,
            PYTHONPATH=str(copy),
            SCRATCHVIT_COURSE_REPORT=str(report),
            CI="1",
            HYPOTHESIS_PROFILE="course",
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MPLBACKEND="Agg",
        )
        command = [sys.executable, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider"]
        command += ["-p", "scratchvit.course.report"]
        command += (["--collect-only"] if collect_only else []) + list(args)
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=copy, env=environment, capture_output=True, text=True, timeout=timeout)
            returncode, timed_out, output = done.returncode, False, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            returncode, timed_out = -1, True
            output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else ""
        seconds = time.perf_counter() - start
        tests = {}
        if report.is_file():
            for line in report.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                tests[entry["nodeid"]] = entry
    return PytestRun(returncode, seconds, timed_out, tests, output)


def course_marker_of(entry: dict) -> str | None:
    """The test's one course marker, or None when it has none or several."""
    markers = entry.get("markers", [])
    return markers[0] if len(markers) == 1 else None
