"""chunks.py: how many threads the chunked elementwise kernels use."""

from __future__ import annotations

import os

import pytest

from scratchvit.ops import chunks


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({"OMP_NUM_THREADS": "1"}, 1), ({"OPENBLAS_NUM_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "x"}, None), ({}, None)],
)
def test_chunk_threads_follow_the_blas_limit_else_the_cores_this_process_may_use(monkeypatch, environment, expected):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert chunks._thread_count() == (expected if expected is not None else cores)
