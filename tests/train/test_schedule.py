"""Learning-rate schedules at their key steps, from the formulas re-stated here, and how they set
the optimizer's parameter groups."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvit import nn
from scratchvit.train import SGD, ConstantSchedule, CosineSchedule, OneCycleSchedule


def test_cosine_warmup_starts_at_warmup_lr_and_reaches_base_lr():
    schedule = CosineSchedule(base_lr=1e-3, total_steps=100, warmup_steps=10, min_lr=1e-5, warmup_lr=1e-6)
    assert schedule(0) == 1e-6
    assert schedule(5) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 5 / 10)
    assert schedule(10) == pytest.approx(1e-3)  # warmup end: the cosine starts at its top
    assert schedule(55) == pytest.approx((1e-3 + 1e-5) / 2)  # half way down: cos(pi / 2) = 0
    assert schedule(100) == pytest.approx(1e-5)  # end of the cosine
    assert schedule(500) == pytest.approx(1e-5)  # and after it


def test_cosine_without_warmup_is_half_a_cosine():
    schedule = CosineSchedule(base_lr=0.1, total_steps=8)
    for step in range(9):
        assert schedule(step) == pytest.approx(0.1 * (1 + math.cos(math.pi * step / 8)) / 2)


@given(step=st.integers(0, 300), warmup=st.integers(0, 50), min_lr=st.sampled_from([0.0, 1e-6, 1e-4]))
def test_cosine_matches_maes_formula_per_step(step, warmup, min_lr):
    base_lr, total = 1e-3, 200
    schedule = CosineSchedule(base_lr, total_steps=total, warmup_steps=warmup, min_lr=min_lr)
    # MAE util/lr_sched.py adjust_learning_rate, with steps for epochs, clamped after the end
    if step < warmup:
        expected = base_lr * step / warmup
    else:
        progress = min(step, total) - warmup
        expected = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress / (total - warmup)))
    assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_cosine_decreases_after_warmup():
    schedule = CosineSchedule(1.0, total_steps=50, warmup_steps=5, min_lr=0.01)
    values = [schedule(step) for step in range(5, 51)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))


def one_cycle_reference(step, max_lr, total, pct_start, div_factor, final_div_factor):
    """torch.optim.lr_scheduler.OneCycleLR (two phases, anneal_strategy='cos'), re-stated."""
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    phase_end = float(pct_start * total) - 1

    def cos_anneal(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    if step <= phase_end:
        return cos_anneal(initial_lr, max_lr, step / phase_end)
    return cos_anneal(max_lr, min_lr, (step - phase_end) / (total - 1 - phase_end))


def test_one_cycle_key_points():
    schedule = OneCycleSchedule(max_lr=0.1, total_steps=100, pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    assert schedule(0) == pytest.approx(0.1 / 25)  # starts at max_lr / div_factor
    assert schedule(29) == pytest.approx(0.1)  # peak at pct_start * total_steps - 1
    assert schedule(99) == pytest.approx(0.1 / 25 / 1e4)  # ends at initial_lr / final_div_factor
    values = [schedule(step) for step in range(100)]
    assert values.index(max(values)) == 29
    assert all(a <= b for a, b in zip(values[:29], values[1:30], strict=True))
    assert all(a >= b for a, b in zip(values[29:-1], values[30:], strict=True))


@given(
    total=st.integers(4, 400),
    pct_start=st.sampled_from([0.1, 0.25, 0.3, 0.5]),
    div_factor=st.sampled_from([5.0, 25.0]),
    final_div_factor=st.sampled_from([10.0, 1e4]),
    data=st.data(),
)
def test_one_cycle_matches_pytorchs_formula(total, pct_start, div_factor, final_div_factor, data):
    if pct_start * total <= 1:  # a phase 1 of at most one point: PyTorch divides by zero there
        return
    step = data.draw(st.integers(0, total - 1))
    schedule = OneCycleSchedule(0.1, total, pct_start, div_factor, final_div_factor)
    assert schedule(step) == pytest.approx(
        one_cycle_reference(step, 0.1, total, pct_start, div_factor, final_div_factor)
    )


def test_one_cycle_past_total_steps_is_an_error():
    schedule = OneCycleSchedule(0.1, total_steps=10)
    with pytest.raises(ValueError, match="step 11, past its total_steps 10"):
        schedule(11)


def test_constant():
    assert [ConstantSchedule(0.3)(step) for step in (0, 1, 1000)] == [0.3, 0.3, 0.3]


def make_optimizer():
    parameters = [nn.Parameter(np.zeros(2, np.float32)) for _ in range(2)]
    return SGD([{"params": parameters[:1], "lr_scale": 0.25}, {"params": parameters[1:]}], lr=1.0)


def test_step_sets_every_group_to_lr_times_its_scale_and_advances():
    optimizer = make_optimizer()
    schedule = CosineSchedule(0.8, total_steps=4, warmup_steps=2)
    lrs = [schedule.step(optimizer) for _ in range(3)]
    assert lrs == [schedule(0), schedule(1), schedule(2)] and schedule.step_count == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25 * schedule(2))
    assert optimizer.param_groups[1]["lr"] == pytest.approx(schedule(2))


def test_state_dict_carries_the_position():
    optimizer = make_optimizer()
    schedule = OneCycleSchedule(0.1, total_steps=20)
    for _ in range(7):
        schedule.step(optimizer)
    resumed = OneCycleSchedule(0.1, total_steps=20)
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.step(optimizer) == schedule.step(make_optimizer()) == schedule(7)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CosineSchedule(1e-3, total_steps=10, warmup_steps=10), "warmup_steps < total_steps"),
        (lambda: CosineSchedule(-1.0, total_steps=10), "base_lr must be >= 0"),
        (lambda: OneCycleSchedule(0.1, total_steps=10, pct_start=1.0), "pct_start"),
        (lambda: OneCycleSchedule(0.1, total_steps=0), "total_steps"),
        (lambda: ConstantSchedule(-0.1), "lr must be >= 0"),
        (lambda: ConstantSchedule(0.1)(-1), "step must be >= 0"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
