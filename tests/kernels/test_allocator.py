"""allocator.py: glibc keeps freed memory for reuse; SCRATCHVIT_MALLOC chooses."""

from __future__ import annotations

import platform

import pytest

from scratchvit.kernels.cpu import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_glibc_takes_both_thresholds():
    assert allocator.retain_freed_memory() is True


def test_system_leaves_malloc_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setenv("SCRATCHVIT_MALLOC", "system")
    assert allocator.configure_from_environment() is False and calls == []
    monkeypatch.delenv("SCRATCHVIT_MALLOC")
    assert allocator.configure_from_environment() is True and calls == [1]


def test_an_unknown_setting_is_named(monkeypatch):
    monkeypatch.setenv("SCRATCHVIT_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match="SCRATCHVIT_MALLOC must be 'retain' or 'system', got 'jemalloc'"):
        allocator.configure_from_environment()
