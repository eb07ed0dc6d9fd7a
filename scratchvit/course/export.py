"""Write a student copy of the repository: the regions of the chosen tasks blanked, with the derivations in
their ops' docstrings (derivations.py); the fast tier left out; the notes at notes/, a README of the tasks
and a GitHub Classroom workflow with one step per task.

    export(root, out, module=3)          # module 3's tasks and every later one blanked, earlier ones solved
    export(root, out, module=None)       # every task blanked
    export(root, out, solution=True)     # nothing blanked: the teacher's copy
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from . import regions as region_tools
from .derivations import derivation_classes, hide_derivations
from .tasks import BY_ID, LEFT_OUT_TESTS, MODULES, TASKS

NOTES = Path(__file__).resolve().parent / "notes"
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
# the fast tier and what only it needs; the benchmarks, dev tools and CI of the project
LEFT_OUT = ("scratchvit/kernels/", "tests/kernels/", "tests/test_textbook_tier.py", "benchmarks/", "tools/", ".ci/")
LEFT_OUT += ("scratchvit/course/notes/", "scratchvit/course/notebooks/", ".github/")
_FAST_TIER_IMPORT = re.compile(r"^\s*(from scratchvit\.kernels\.\w+|from scratchvit\.kernels import (cpu|cuda))", re.M)
_SKIPPED_PARTS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ci-venv", ".ruff_cache"}

KERNELS_STUB = '''"""The fast tier is left out of the course copy: no kernel is registered, so every op runs as
scratchvit/ops writes it. The tier switch and its registry (registry.py) keep their names."""

from .registry import *  # noqa: F403 - the tier switch and the (empty) registry
from .registry import configure_from_environment


def tune_process() -> dict:
    """Nothing to tune without the fast tier."""
    return {"malloc": False, "threads": False}


def restore_process() -> None:
    """Nothing to undo without the fast tier."""


configure_from_environment()
'''


def repository() -> Path:
    """The repository this package runs from (a clone installed with pip install -e)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "tests").is_dir():
        raise ValueError(
            f"the course needs the project's repository (a clone, pip install -e .), but {root} is not one"
        )
    return root


def blank_message(region) -> str:
    """'Task 3.2: LayerNormFn.backward — see notes/06_layer_norm.md'"""
    return f"Task {region.task}: {region.name} \u2014 see notes/{BY_ID[region.task].notes}"


def derivation_message(task_id: str) -> str:
    """The line that stands for a blanked op's derivation in its docstring."""
    return f"Backward: Task {task_id}, yours to derive and write (notes/{BY_ID[task_id].notes})."


def blanked_tasks(module: int | None, solution: bool) -> set:
    """The ids blanked: none for the solution; module N's and every later module's; all when module is None."""
    if solution:
        return set()
    if module is None:
        return set(BY_ID)
    if module not in MODULES:
        raise ValueError(f"--module must be one of {', '.join(map(str, MODULES))}, got {module}")
    return {task.id for task in TASKS if task.module >= module}


def source_files(root: Path) -> list:
    """The files of the working tree (git's view where it is a repository: tracked and not ignored)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name and (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        names = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
    return sorted(name for name in names if not _SKIPPED_PARTS & set(Path(name).parts))


def _deselect_left_out(pyproject: str) -> str:
    """pyproject.toml with pytest's addopts deselecting the tests of what the copy leaves out."""
    deselect = "".join(f" --deselect {node}" for node in LEFT_OUT_TESTS)
    return re.sub(r'^(addopts = ".*)"$', lambda match: match.group(1) + deselect + '"', pyproject, count=1, flags=re.M)


def _left_out(name: str, root: Path) -> bool:
    if name == "scratchvit/kernels/registry.py":
        return False
    if any(name.startswith(prefix) or name == prefix for prefix in LEFT_OUT):
        return True
    if name.startswith("tests/") and Path(name).name.startswith("test_") and name.endswith(".py"):
        return bool(_FAST_TIER_IMPORT.search((root / name).read_text(encoding="utf-8")))
    return False


def export(
    root: Path,
    out: Path,
    module: int | None = None,
    solution: bool = False,
    blank: set | None = None,
    instrument: bool = False,
    init_git: bool = True,
) -> set:
    """Write the copy to `out` (which must not exist or be empty); returns the ids blanked.

    blank: exactly these task ids blanked (overrides module/solution). instrument: record which
    tasks' regions each test runs (regions.instrument_source), for the soundness check."""
    root, out = Path(root).resolve(), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty folder; give a new path")
    blanked = set(blank) if blank is not None else blanked_tasks(module, solution)
    found = region_tools.find_regions(root)
    by_path: dict = {}
    for region in found:
        by_path.setdefault(region.path, []).append(region)
    hidden: dict = {}  # {path: {class: task}}: the derivations to hide, those of the blanked tasks
    for (path, class_name), task in derivation_classes(found).items():
        if task in blanked:
            hidden.setdefault(path, {})[class_name] = task
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    for name in source_files(root):
        if _left_out(name, root):
            continue
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == "pyproject.toml":
            target.write_text(_deselect_left_out((root / name).read_text(encoding="utf-8")), encoding="utf-8")
        elif name in by_path:
            text = (root / name).read_text(encoding="utf-8")
            to_blank = [r for r in by_path[name] if r.task in blanked]
            kept = [r for r in by_path[name] if r.task not in blanked]
            if instrument:
                text = region_tools.instrument_source(text, kept)
                to_blank = region_tools.parse_regions(name, text)
                to_blank = [r for r in to_blank if r.task in blanked]
            text = region_tools.blank_source(text, to_blank, blank_message)
            target.write_text(hide_derivations(text, hidden.get(name, {}), derivation_message), encoding="utf-8")
        else:
            shutil.copy2(root / name, target)
    (staging / "scratchvit/kernels/__init__.py").write_text(KERNELS_STUB, encoding="utf-8")
    for folder, into in ((NOTES, "notes"), (NOTEBOOKS, "notebooks")):
        if folder.is_dir():
            shutil.copytree(folder, staging / into, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    if (root / "README.md").is_file():
        shutil.copy2(root / "README.md", staging / "PROJECT_README.md")
    (staging / "README.md").write_text(readme(blanked), encoding="utf-8")
    workflow = staging / ".github/workflows/classroom.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(classroom_workflow(blanked), encoding="utf-8")
    if out.exists():
        out.rmdir()
    os.replace(staging, out)
    if init_git:
        _init_repository(out)
    return blanked


def _init_repository(out: Path) -> None:
    """A fresh repository with one commit and no history behind it (skipped where git is missing)."""
    identity = ["-c", "user.name=scratchvit course", "-c", "user.email=course@scratchvit.invalid"]
    try:
        subprocess.run(["git", "init", "-q"], cwd=out, check=True, capture_output=True)
        subprocess.run(["git", "add", "-A"], cwd=out, check=True, capture_output=True)
        subprocess.run(
            ["git", *identity, "commit", "-q", "-m", "Student copy"], cwd=out, check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError):
        pass


def _task_files(task) -> str:
    return ", ".join(sorted({label.split("::")[0] for label in task.regions}))


def readme(blanked: set) -> str:
    """The copy's README: how to work, then each task with its files, its test command and its time."""
    lines = [
        "# scratchvit: the course",
        "",
        "Build Vision Transformers from scratch: the autograd engine, every op's backward, attention, and",
        'ViT, MAE and Swin on top. Each task below is a `raise NotImplementedError("Task ...")` in the',
        "source; replace it with your code. The note named in the message derives what to write.",
        "",
        "```bash",
        "pip install -e '.[test,course]'",
        "python -m pytest -q -m task0_1          # the tests of one task",
        "scratchvit course grade .               # every task, with points: grades.json and grades.csv",
        "```",
        "",
        "The fast tier (`scratchvit/kernels/` in the project) is left out: every op runs as you write it.",
        "The project's own README is PROJECT_README.md.",
        "",
    ]
    for module, title in MODULES.items():
        lines += [f"## Module {module}: {title}", "", "| task | title | points | files | tests | expected |"]
        lines += ["|---|---|---|---|---|---|"]
        for task in TASKS:
            if task.module == module:
                state = "" if task.id in blanked else " (solved)"
                lines.append(
                    f"| {task.id}{state} | {task.title} | {task.points} | {_task_files(task)} | "
                    f"`python -m pytest -q -m {task.marker}` | {task.expected_seconds:g} s |"
                )
        lines.append("")
    return "\n".join(lines)


def classroom_workflow(blanked: set) -> str:
    """GitHub Classroom autograding: one step per blanked task with its points, then the reporter."""
    graded = [task for task in TASKS if task.id in blanked]
    lines = [
        "name: Autograding Tests",
        "on: [push, workflow_dispatch, repository_dispatch]",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        "  run-autograding-tests:",
        "    runs-on: ubuntu-latest",
        "    if: github.actor != 'github-classroom[bot]'",
        "    steps:",
        "      - name: Checkout code",
        "        uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        "          python-version: '3.11'",
        "      - name: Install",
        "        run: pip install -e '.[test]'",
    ]
    for task in graded:
        minutes = max(1, int(3 * task.expected_seconds / 60 + 1))
        lines += [
            f"      - name: Task {task.id}",
            f"        id: {task.marker}",
            "        uses: classroom-resources/autograding-command-grader@v1",
            "        with:",
            f'          test-name: "Task {task.id}: {task.title}"',
            f"          command: python -m pytest -q -p no:cacheprovider -m {task.marker}",
            f"          timeout: {minutes}",
            f"          max-score: {task.points}",
        ]
    lines += [
        "      - name: Autograding Reporter",
        "        uses: classroom-resources/autograding-grading-reporter@v1",
        "        env:",
    ]
    lines += [
        f"          {task.marker.upper()}_RESULTS: ${{{{steps.{task.marker}.outputs.result}}}}" for task in graded
    ]
    lines += ["        with:", f"          runners: {','.join(task.marker for task in graded)}", ""]
    return "\n".join(lines)
