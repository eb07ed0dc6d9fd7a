"""prefetched(): the batches come in order while a thread makes the next ones; an error in the
thread comes out where its batch would have; a consumer that stops early ends the thread, and the
batches' generator is closed in the thread that ran it."""

from __future__ import annotations

import threading

import pytest

from scratchvit.data.loader import prefetched


def test_batches_come_in_order_and_are_made_on_another_thread():
    made_on = []

    def batches():
        for index in range(7):
            made_on.append(threading.current_thread())
            yield index

    assert list(prefetched(batches(), depth=2)) == list(range(7))
    assert threading.main_thread() not in made_on


def test_an_error_while_making_a_batch_comes_out_in_its_place():
    def batches():
        yield 0
        yield 1
        raise OSError("the third file is unreadable")

    got = []
    with pytest.raises(OSError, match="the third file is unreadable"):
        for batch in prefetched(batches()):
            got.append(batch)
    assert got == [0, 1]


def test_stopping_early_ends_the_thread_and_closes_the_batches_where_they_ran():
    state = {}

    def batches():
        state["thread"] = threading.current_thread()
        try:
            yield from range(1000)
        finally:
            state["closed_on"] = threading.current_thread()

    for batch in prefetched(batches(), depth=2):
        if batch == 3:
            break
    assert state["closed_on"] is state["thread"] is not threading.main_thread()
    assert not state["thread"].is_alive()
