"""Solution regions: the code a student writes, marked in the source by two comment lines,

    # BEGIN SOLUTION 3.2 LayerNormFn.backward
    ...the solution...
    # END SOLUTION 3.2

the task id, then the function or method the region lies in. `find_regions` reads them from a
tree, `check_regions` checks that every BEGIN has its END and names the code it lies in, and
`blank_source` replaces a region by one line, `raise NotImplementedError("Task 3.2:
LayerNormFn.backward — see notes/06_layer_norm.md")`, at the region's indentation.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<task>\S+) (?P<name>\S+)\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION (?P<task>\S+)\s*$")
ANY_MARKER = re.compile(r"#\s*(BEGIN|END) SOLUTION")


@dataclass(frozen=True)
class Region:
    """Lines begin..end (1-based, the marker lines included) of `path` (relative to the tree)."""

    path: str
    task: str
    name: str
    begin: int
    end: int
    indent: str

    @property
    def label(self) -> str:
        """'scratchvit/ops/norm.py::LayerNormFn.backward', as the task table names regions."""
        return f"{self.path}::{self.name}"


class RegionError(ValueError):
    """A marker without its partner, a region inside another, or one that names no code."""


def parse_regions(path: str, text: str) -> list:
    """The regions of one file's text; RegionError on an unpaired or nested marker."""
    regions, open_region = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_region is not None:
                raise RegionError(f"{path}:{number}: BEGIN SOLUTION inside the region opened at line {open_region[0]}")
            open_region = (number, begin["task"], begin["name"], begin["indent"])
        elif end:
            if open_region is None:
                raise RegionError(f"{path}:{number}: END SOLUTION {end['task']} without a BEGIN")
            start, task, name, indent = open_region
            if end["task"] != task:
                raise RegionError(f"{path}:{number}: END SOLUTION {end['task']} closes the region of task {task}")
            regions.append(Region(path, task, name, start, number, indent))
            open_region = None
        elif ANY_MARKER.search(line):
            raise RegionError(f"{path}:{number}: a SOLUTION marker not in the form '# BEGIN SOLUTION <task> <name>'")
    if open_region is not None:
        raise RegionError(f"{path}:{open_region[0]}: BEGIN SOLUTION {open_region[1]} has no END")
    return regions


def find_regions(root: Path) -> list:
    """Every region in the Python files of root/scratchvit (but the course's own, which names the
    markers), sorted by file and line."""
    found = []
    for path in sorted((root / "scratchvit").rglob("*.py")):
        if "course" in path.relative_to(root).parts[:2]:
            continue
        text = path.read_text(encoding="utf-8")
        if "SOLUTION" in text:
            found += parse_regions(path.relative_to(root).as_posix(), text)
    return found


def enclosing_names(text: str) -> dict:
    """{qualified name: (first line, last line)} of every function and class in `text`."""
    spans = {}

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                spans[name] = (child.lineno, child.end_lineno)
                visit(child, name + ".")

    visit(ast.parse(text), "")
    return spans


def check_regions(root: Path, regions: list) -> list:
    """Problems (one line each) with regions that name no code: the named function must exist
    and hold the whole region, and the region must hold code, not only comments."""
    problems, spans_of = [], {}
    for region in regions:
        if region.path not in spans_of:
            spans_of[region.path] = enclosing_names((root / region.path).read_text(encoding="utf-8"))
        span = spans_of[region.path].get(region.name)
        if span is None:
            problems.append(
                f"{region.path}:{region.begin}: region of task {region.task} names {region.name}, not found"
            )
        elif not span[0] < region.begin <= span[1]:  # the END may follow the last statement, as a comment
            problems.append(f"{region.path}:{region.begin}: region of task {region.task} lies outside {region.name}")
        if not solution_lines(root, region):
            problems.append(f"{region.path}:{region.begin}: region of task {region.task} holds no code")
    return problems


def solution_lines(root: Path, region: Region) -> list:
    """The stripped lines strictly between a region's markers that are code (not blank, not comments)."""
    lines = (root / region.path).read_text(encoding="utf-8").splitlines()[region.begin : region.end - 1]
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def blank_source(text: str, regions: list, message_of) -> str:
    """`text` with each of `regions` (all of one file) replaced by `raise NotImplementedError(message)`,
    message_of(region) giving the message."""
    lines = text.splitlines(keepends=True)
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        message = message_of(region).replace("\\", "\\\\").replace('"', '\\"')
        lines[region.begin - 1 : region.end] = [f'{region.indent}raise NotImplementedError("{message}")\n']
    return "".join(lines)


def instrument_source(text: str, regions: list) -> str:
    """`text` with a line after each BEGIN marker that records the region's task in `sys.scratchvit_course_hits`
    when it runs (the soundness check's trace of which tests reach which task's code). It imports nothing of
    scratchvit, so the layer order of the package is unchanged."""
    lines = text.splitlines(keepends=True)
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        record = f'__import__("sys").__dict__.setdefault("scratchvit_course_hits", set()).add("{region.task}")'
        lines.insert(region.begin, f"{region.indent}{record}\n")
    return "".join(lines)
