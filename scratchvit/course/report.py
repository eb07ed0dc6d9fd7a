"""A pytest plugin that writes one JSON line per test: its course marker, outcome, seconds, the task
ids named by the NotImplementedErrors in its failure, and the tasks whose solution regions it ran
(when the copy is instrumented, see regions.instrument_source).

    python -m pytest -p scratchvit.course.report ...     # with SCRATCHVIT_COURSE_REPORT=out.jsonl

Loaded only by `scratchvit course grade` and `scratchvit course check`, in a pytest run.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from .tasks import COURSE_MARKERS

# the message a blanked region raises: "Task 3.2: LayerNormFn.backward — see notes/06_layer_norm.md"
BLANK_MESSAGE = re.compile(r"Task (\d+\.\d+): \S+ \u2014 see notes/")
_results: dict = {}


def _record(nodeid: str, **fields) -> None:
    _results.setdefault(nodeid, {"nodeid": nodeid, "outcome": "passed", "seconds": 0.0, "named": [], "other": ""})
    _results[nodeid].update(fields)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Clear the record of regions run, run the test, keep what it ran."""
    sys.__dict__.setdefault("scratchvit_course_hits", set()).clear()
    _record(item.nodeid, outcome="passed")
    result = yield
    _record(item.nodeid, hits=sorted(sys.__dict__.get("scratchvit_course_hits", ())))
    return result


def pytest_runtest_logreport(report) -> None:
    entry = _results.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "named": []})
    entry["seconds"] = entry.get("seconds", 0.0) + report.duration
    if report.skipped and report.when in ("setup", "call"):
        entry["outcome"] = "skipped"
    if report.failed:
        text = report.longreprtext + "\n".join(content for _, content in report.sections)
        entry["outcome"] = "failed"
        entry["named"] = sorted(set(entry.get("named", [])) | set(BLANK_MESSAGE.findall(text)))
        if not BLANK_MESSAGE.search(text):
            lines = [line for line in report.longreprtext.splitlines() if line.startswith("E ")]
            entry["other"] = (lines[0] if lines else report.longreprtext.strip().splitlines()[-1:] or [""])[0][:300]


def pytest_sessionfinish(session) -> None:
    target = os.environ.get("SCRATCHVIT_COURSE_REPORT")
    if not target:
        return
    with open(target, "w", encoding="utf-8") as out:
        for entry in _results.values():
            out.write(json.dumps(entry) + "\n")


def pytest_collectreport(report) -> None:
    """A file that fails to import is a failure of its own, named by the file."""
    if report.failed:
        _record(f"collect::{report.nodeid}", outcome="failed", markers=[], other=report.longreprtext[-300:])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items) -> None:
    """Every collected test with its course markers, so a --collect-only run reports them too."""
    for item in items:
        markers = [mark.name for mark in item.iter_markers() if mark.name in COURSE_MARKERS]
        _record(item.nodeid, markers=markers, outcome="collected")
