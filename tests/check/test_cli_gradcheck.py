"""`scratchvit gradcheck`: a table of every op, the summary line, exit codes 0 / 1 / 2.

The command's behaviour is tested on a table of private toy Functions (toy_functions.py), so a course
copy with any op blanked still tests the command; one test runs it over the real op table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from toy_functions import TOY_TABLE, SoftmaxMissingTerm

from scratchvit.app import cli
from scratchvit.check import op_table
from scratchvit.check.op_table import OP_TABLE, run_gradchecks


@pytest.fixture
def toy_table(monkeypatch) -> list:
    """The op table replaced by the toy one, for this test."""
    monkeypatch.setattr(op_table, "OP_TABLE", list(TOY_TABLE))
    monkeypatch.setattr(op_table, "OPS", {entry.name: entry for entry in TOY_TABLE})
    return op_table.OP_TABLE


def test_gradcheck_command_checks_every_op(capsys):
    assert cli.main(["gradcheck"]) == 0
    tier, *lines = capsys.readouterr().out.strip().splitlines()
    assert tier == "tier: textbook"
    assert lines[0].split() == ["op", "input", "shapes", "max", "rel", "error", "result"]
    rows = lines[1:-1]
    assert [row.split()[0] for row in rows] == [entry.name for entry in OP_TABLE]
    assert all(row.rstrip().endswith("pass") for row in rows)
    assert lines[-1] == f"{len(OP_TABLE)} passed, 0 failed"


def test_gradcheck_command_lists_each_op_of_the_table(capsys, toy_table):
    assert cli.main(["gradcheck"]) == 0
    tier, header, *rows, summary = capsys.readouterr().out.strip().splitlines()
    assert tier == "tier: textbook" and header.split()[:3] == ["op", "input", "shapes"]
    assert [row.split()[0] for row in rows] == ["toy_square", "toy_softmax", "toy_scale_shift"]
    assert [row.split()[1] for row in rows] == ["2x3", "3x4", "4x3"]
    assert all(row.rstrip().endswith("pass") for row in rows)
    assert summary == "3 passed, 0 failed"


def test_gradcheck_command_with_chosen_ops(capsys, toy_table):
    assert cli.main(["gradcheck", "--op", "toy_softmax", "--op", "toy_square", "--seed", "3", "--kernels", "fast"]) == 0
    tier, *lines = capsys.readouterr().out.strip().splitlines()
    assert tier == "tier: fast"
    assert [line.split()[0] for line in lines[1:-1]] == ["toy_softmax", "toy_square"]
    assert lines[-1] == "2 passed, 0 failed"


def test_an_unknown_op_is_one_clear_line_and_exit_code_2(capsys, toy_table):
    assert cli.main(["gradcheck", "--op", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = captured.err.strip().splitlines()
    assert len(error_lines) == 1
    assert "unknown op 'nope'" in error_lines[0] and "toy_softmax" in error_lines[0]


def test_an_unknown_device_is_exit_code_2(capsys, toy_table):
    assert cli.main(["gradcheck", "--device", "tpu", "--op", "toy_square"]) == 2
    assert "'tpu' is not known" in capsys.readouterr().err


def test_a_broken_op_fails_the_command_with_exit_code_1(capsys, toy_table, monkeypatch):
    broken = dataclasses.replace(toy_table[1], function=SoftmaxMissingTerm.apply)
    monkeypatch.setitem(op_table.OPS, "toy_softmax", broken)
    toy_table[1] = broken
    assert cli.main(["gradcheck"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    softmax_line = next(line for line in lines if line.split()[0] == "toy_softmax")
    assert "FAIL gradient of input 0" in softmax_line and "analytic" in softmax_line
    assert lines[-1] == "2 passed, 1 failed"


def test_an_op_that_raises_is_reported_as_a_failure(toy_table, monkeypatch):
    def raises(*inputs):
        raise ValueError("boom")

    monkeypatch.setitem(op_table.OPS, "toy_square", dataclasses.replace(toy_table[0], function=raises))
    (row,) = run_gradchecks(only=["toy_square"])
    assert not row.passed and row.message == "ValueError: boom" and np.isnan(row.max_relative_error)


def test_run_gradchecks_rows(toy_table):
    rows = run_gradchecks(only=["toy_scale_shift", "toy_square"], seed=1)
    assert [row.op for row in rows] == ["toy_scale_shift", "toy_square"]
    assert [row.message for row in rows] == ["", ""]  # an op that raised would show its error here
    assert rows[0].shapes == "4x3 3 3" and rows[1].shapes == "2x3"
    assert all(row.passed and row.message == "" and 0 <= row.max_relative_error < 1e-6 for row in rows)
    # the same inputs whether an op runs alone or with all the others
    alone = run_gradchecks(only="toy_square", seed=1)[0]
    assert alone.max_relative_error == rows[1].max_relative_error


def test_run_gradchecks_refuses_unknown_names_listing_the_known_ones(toy_table):
    with pytest.raises(ValueError, match=r"unknown op 'nope', 'nada'; known ops: toy_square, toy_softmax") as caught:
        run_gradchecks(only=["toy_square", "nope", "nada"])
    assert all(name in str(caught.value) for name in op_table.OPS)
