"""The course tooling: solution regions, the task table, the markers, the student copy.

These need the solved repository (the table and the source agree only there), so they are capstone tests.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from scratchvit.check.op_table import OPS
from scratchvit.course import derivations, export, grade, regions
from scratchvit.course.tasks import BY_ID, CAPSTONE, FRAMEWORK, TASKS, closure, course_marker

ROOT = export.repository()


def test_markers_pair_up_and_blank_to_one_raise_at_their_indentation():
    text = "def f(x):\n    # BEGIN SOLUTION 9.9 f\n    y = x + 1\n    return y\n    # END SOLUTION 9.9\n"
    (region,) = regions.parse_regions("m.py", text)
    assert (region.task, region.name, region.begin, region.end, region.indent) == ("9.9", "f", 2, 5, "    ")
    blanked = regions.blank_source(text, [region], lambda r: f'Task {r.task}: {r.name} "x"')
    assert blanked == 'def f(x):\n    raise NotImplementedError("Task 9.9: f \\"x\\"")\n'
    with pytest.raises(regions.RegionError, match="has no END"):
        regions.parse_regions("m.py", "    # BEGIN SOLUTION 1.1 f\n    pass\n")
    with pytest.raises(regions.RegionError, match="closes the region of task 1.1"):
        regions.parse_regions("m.py", "# BEGIN SOLUTION 1.1 f\npass\n# END SOLUTION 1.2\n")


def test_the_derivation_paragraph_of_a_docstring_is_found_and_hidden():
    text = (
        "class Cube:\n"
        '    """y = x^3.\n\n    Backward: dy/dx = 3 x^2\n        => dx = 3 g x^2.\n    """\n\n'
        "    def backward(self, grad):\n        return grad\n"
    )
    assert derivations.find_derivation(text, "Cube") == (4, 5)
    hidden = derivations.hide_derivations(text, {"Cube": "1.3"}, lambda task: f"Backward: Task {task}, yours.")
    assert hidden.startswith('class Cube:\n    """y = x^3.\n\n    Backward: Task 1.3, yours.\n    """\n\n')
    with pytest.raises(derivations.DerivationError, match="0 lines starting with Backward"):
        derivations.find_derivation(text.replace("Backward", "So"), "Cube")
    with pytest.raises(derivations.DerivationError, match="does not follow a blank line"):
        derivations.find_derivation(text.replace("x^3.\n\n", "x^3.\n"), "Cube")
    with pytest.raises(derivations.DerivationError, match="has no docstring"):
        derivations.find_derivation("class Cube:\n    pass\n", "Cube")


def test_the_table_names_exactly_the_regions_of_the_source_and_owns_every_op_once():
    found = regions.find_regions(ROOT)
    assert regions.check_regions(ROOT, found) == []
    assert derivations.check_derivations(ROOT, found) == []
    assert ("scratchvit/ops/norm.py", "LayerNormFn") in derivations.derivation_classes(found)
    for task in TASKS:
        assert set(task.regions) == {r.label for r in found if r.task == task.id}, task.id
    owners = [op for task in TASKS for op in task.ops]
    assert sorted(owners) == sorted(OPS)
    assert all(set(task.depends) <= set(BY_ID) and task.id not in task.depends for task in TASKS)
    assert closure("3.2") >= {"0.1", "0.2", "2.5"} and "3.1" not in closure("3.2")


def test_each_test_gets_the_most_specific_marker():
    assert course_marker("tests/ops/test_norm.py", "test_layer_norm_float32") == "task3_2"
    assert course_marker("tests/ops/test_activation.py", "test_gelu_known_values") == "task3_3"
    assert course_marker("tests/ops/test_activation.py", "test_softmax_slices_sum_to_one") == "task3_4"
    assert (
        course_marker("tests/check/test_op_table.py", "test_gradient_matches_finite_differences", "gelu") == "task3_3"
    )
    assert course_marker("tests/train/test_loop.py", "test_anything") == CAPSTONE
    assert course_marker("tests/io/test_safetensors.py", "test_anything") == FRAMEWORK


def test_a_module_copy_blanks_that_module_and_later_leaves_out_the_fast_tier_and_raises_naming_the_task(tmp_path):
    copy = tmp_path / "m3"
    blanked = export.export(ROOT, copy, module=3, init_git=False)
    assert blanked == {task.id for task in TASKS if task.module >= 3}
    assert sorted(path.name for path in (copy / "scratchvit/kernels").iterdir()) == ["__init__.py", "registry.py"]
    assert not (copy / "tests/kernels").exists() and (copy / "notes/06_layer_norm.md").is_file()
    readme = (copy / "README.md").read_text(encoding="utf-8")
    assert "`python -m pytest -q -m task3_2`" in readme and "| 2.5 (solved) |" in readme
    workflow = (copy / ".github/workflows/classroom.yml").read_text(encoding="utf-8")
    assert workflow.count("autograding-command-grader@v1") == len(blanked)
    assert "max-score: 10" in workflow and "-m task3_2" in workflow and "-m task2_5" not in workflow
    norm = (copy / "scratchvit/ops/norm.py").read_text(encoding="utf-8")
    assert "Backward: Task 3.2, yours to derive and write (notes/06_layer_norm.md)." in norm
    assert "x_hat mean(h * x_hat)" not in norm and "x_hat = (x - mu) r" in norm
    reshape = (copy / "scratchvit/ops/shape.py").read_text(encoding="utf-8")
    assert "Backward: Task 2.1" not in reshape  # a solved task keeps its derivation
    probe = (
        "import numpy as np, scratchvit as sv\n"
        "assert not sv.kernels.registered_kernels()\n"
        "try:\n    sv.ops.layer_norm(sv.Tensor(np.ones((2, 3))))\n"
        "except NotImplementedError as error:\n    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env=dict(os.environ, PYTHONPATH=str(copy)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "Task 3.2: LayerNormFn.forward \u2014 see notes/06_layer_norm.md"


def test_an_existing_folder_is_refused_and_a_bad_module_named(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        export.export(ROOT, tmp_path / "full", module=3, init_git=False)
    with pytest.raises(ValueError, match="--module must be one of 0, 1, 2, 3, 4, 5, got 7"):
        export.export(ROOT, tmp_path / "new", module=7, init_git=False)


def test_grade_gives_a_solved_tasks_points_and_none_to_a_blank_one(tmp_path):
    copy = tmp_path / "m3"
    export.export(ROOT, copy, module=3, init_git=False)
    grades = grade.grade(copy, tmp_path / "grades", progress=lambda line: None, task_ids=["2.4", "3.6"])
    rows = {row["task"]: row for row in grades["tasks"]}
    assert (rows["2.4"]["status"], rows["2.4"]["earned"], rows["2.4"]["failed"]) == ("passed", 5, 0)
    assert rows["2.4"]["passed"] > 0 and set(rows["2.4"]) >= set(grade.CSV_FIELDS)
    assert (rows["3.6"]["status"], rows["3.6"]["earned"]) == ("failed", 0) and rows["3.6"]["failed"] > 0
    assert (grades["earned"], grades["points"]) == (5, 10)
    assert json.loads((tmp_path / "grades/grades.json").read_text(encoding="utf-8")) == grades
    with open(tmp_path / "grades/grades.csv", encoding="utf-8", newline="") as table:
        assert [(row["task"], row["earned"]) for row in csv.DictReader(table)] == [("2.4", "5"), ("3.6", "0")]
    with pytest.raises(ValueError, match="--task must name tasks of the table .*, got 9.9"):
        grade.grade(copy, task_ids=["9.9"])
