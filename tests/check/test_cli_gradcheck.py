"""`scratchvit gradcheck`: a table of every op, the summary line, exit codes 0 / 1 / 2."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scratchvit.app import cli
from scratchvit.check import op_table
from scratchvit.check.op_table import OP_TABLE, OPS, run_gradchecks
from scratchvit.ops.activation import Softmax


def test_gradcheck_command_checks_every_op(capsys):
    assert cli.main(["gradcheck"]) == 0
    tier, *lines = capsys.readouterr().out.strip().splitlines()
    assert tier == "tier: textbook"
    assert lines[0].split() == ["op", "input", "shapes", "max", "rel", "error", "result"]
    rows = lines[1:-1]
    assert [row.split()[0] for row in rows] == [entry.name for entry in OP_TABLE]
    assert all(row.rstrip().endswith("pass") for row in rows)
    assert lines[-1] == f"{len(OP_TABLE)} passed, 0 failed"


def test_gradcheck_command_with_chosen_ops(capsys):
    assert cli.main(["gradcheck", "--op", "softmax", "--op", "gelu", "--seed", "3", "--kernels", "fast"]) == 0
    tier, *lines = capsys.readouterr().out.strip().splitlines()
    assert tier == "tier: fast"
    assert [line.split()[0] for line in lines[1:-1]] == ["softmax", "gelu"]
    assert lines[-1] == "2 passed, 0 failed"


def test_an_unknown_op_is_one_clear_line_and_exit_code_2(capsys):
    assert cli.main(["gradcheck", "--op", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = captured.err.strip().splitlines()
    assert len(error_lines) == 1
    assert "unknown op 'nope'" in error_lines[0] and "softmax" in error_lines[0]


def test_an_unknown_device_is_exit_code_2(capsys):
    assert cli.main(["gradcheck", "--device", "tpu", "--op", "add"]) == 2
    assert "'tpu' is not known" in capsys.readouterr().err


def _wrong_softmax_backward(monkeypatch):
    class BrokenSoftmax(Softmax):
        def backward(self, grad):
            return grad * self.y  # the "- y * sum(g * y)" term is missing

    entry = OPS["softmax"]
    broken = dataclasses.replace(entry, function=lambda x: BrokenSoftmax.apply(x, axis=x.ndim - 1))
    monkeypatch.setitem(OPS, "softmax", broken)
    table = [broken if candidate is entry else candidate for candidate in OP_TABLE]
    monkeypatch.setattr(op_table, "OP_TABLE", table)


def test_a_broken_op_fails_the_command_with_exit_code_1(capsys, monkeypatch):
    _wrong_softmax_backward(monkeypatch)
    assert cli.main(["gradcheck"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    softmax_line = next(line for line in lines if line.split()[0] == "softmax")
    assert "FAIL gradient of input 0" in softmax_line and "analytic" in softmax_line
    assert lines[-1] == f"{len(OP_TABLE) - 1} passed, 1 failed"


def test_an_op_that_raises_is_reported_as_a_failure(monkeypatch):
    def raises(*inputs):
        raise ValueError("boom")

    monkeypatch.setitem(OPS, "add", dataclasses.replace(OPS["add"], function=raises))
    (row,) = run_gradchecks(only=["add"])
    assert not row.passed and row.message == "ValueError: boom" and np.isnan(row.max_relative_error)


def test_run_gradchecks_rows():
    rows = run_gradchecks(only=["linear", "add"], seed=1)
    assert [row.op for row in rows] == ["linear", "add"]
    assert rows[0].shapes == "2x3x4 3x4 3" and rows[1].shapes == "2x1x2 3x2"
    assert all(row.passed and row.message == "" and 0 <= row.max_relative_error < 1e-6 for row in rows)
    # the same inputs whether an op runs alone or with all the others
    alone = run_gradchecks(only="add", seed=1)[0]
    assert alone.max_relative_error == rows[1].max_relative_error


def test_run_gradchecks_refuses_unknown_names_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown op 'nope', 'nada'; known ops: add, sub, mul") as caught:
        run_gradchecks(only=["add", "nope", "nada"])
    assert all(name in str(caught.value) for name in op_table.OPS)
