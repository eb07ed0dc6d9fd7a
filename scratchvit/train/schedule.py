"""Learning-rate schedules, per optimizer step: cosine with linear warmup, one-cycle, constant.

A schedule is a pure function of the step, `schedule(step) -> lr` (step 0 is the first optimizer
step), plus a counter: `schedule.step(optimizer)` sets every parameter group's lr to
lr(step_count) * group["lr_scale"] (layer-wise lr decay rides on lr_scale, as in MAE's
util/lr_sched.py) and advances the counter. Call it before each optimizer.step(). The counter is
its whole state: `state_dict()` / `load_state_dict()` carry it through a checkpoint.
"""

from __future__ import annotations

import math


class Schedule:
    """Base class: subclasses write `__call__(step) -> lr`."""

    def __init__(self):
        self.step_count = 0

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def apply(self, optimizer, step: int) -> float:
        """Set every group's lr to self(step) * its lr_scale; returns self(step)."""
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def step(self, optimizer) -> float:
        """Set the lr for the next optimizer step and count it; returns the (unscaled) lr."""
        lr = self.apply(optimizer, self.step_count)
        self.step_count += 1
        return lr

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")


class ConstantSchedule(Schedule):
    """lr(step) = lr."""

    def __init__(self, lr: float):
        super().__init__()
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.lr


class CosineSchedule(Schedule):
    """Linear warmup from warmup_lr to base_lr over warmup_steps, then a half-cycle cosine from
    base_lr down to min_lr at total_steps (Loshchilov & Hutter 2017, SGDR, without restarts; the
    MAE and DeiT recipes, here per step rather than per epoch); min_lr after total_steps.

        step < W:  lr = warmup_lr + (base_lr - warmup_lr) * step / W
        else:      lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(1, (step - W) / (T - W)))) / 2
    """

    def __init__(
        self, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0, warmup_lr: float = 0.0
    ):
        super().__init__()
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got warmup_steps {warmup_steps}, total_steps {total_steps}"
            )
        for name, value in (("base_lr", base_lr), ("min_lr", min_lr), ("warmup_lr", warmup_lr)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.base_lr, self.min_lr, self.warmup_lr = float(base_lr), float(min_lr), float(warmup_lr)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

    def __call__(self, step: int) -> float:
        _check_step(step)
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class OneCycleSchedule(Schedule):
    """The 1cycle policy (Smith & Topin 2019) with PyTorch's OneCycleLR semantics (two phases,
    cosine annealing; learning rate only, no momentum cycling):

        initial_lr = max_lr / div_factor,  final_lr = initial_lr / final_div_factor
        phase 1, steps 0 .. pct_start * T - 1:      cosine from initial_lr up to max_lr
        phase 2, steps pct_start * T - 1 .. T - 1:  cosine from max_lr down to final_lr
        cos_anneal(start, end, pct) = end + (start - end) / 2 * (1 + cos(pi * pct))

    As in PyTorch, asking for a step past total_steps is an error.
    """

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ):
        super().__init__()
        if not total_steps > 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
        if not (max_lr >= 0 and div_factor > 0 and final_div_factor > 0):
            raise ValueError(
                f"need max_lr >= 0, div_factor > 0 and final_div_factor > 0, "
                f"got {max_lr}, {div_factor} and {final_div_factor}"
            )
        self.max_lr, self.total_steps = float(max_lr), int(total_steps)
        self.initial_lr = self.max_lr / div_factor
        self.final_lr = self.initial_lr / final_div_factor
        self.peak_step = float(pct_start * total_steps) - 1  # PyTorch's end of phase 1

    @staticmethod
    def _cos_anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def __call__(self, step: int) -> float:
        _check_step(step)
        if step > self.total_steps:
            raise ValueError(f"OneCycleSchedule asked for step {step}, past its total_steps {self.total_steps}")
        if step <= self.peak_step:  # (a phase 1 of one point, peak_step 0, is at its peak: PyTorch divides by 0)
            pct = step / self.peak_step if self.peak_step > 0 else 1.0
            return self._cos_anneal(self.initial_lr, self.max_lr, pct)
        last_step = self.total_steps - 1  # > peak_step, since pct_start < 1
        return self._cos_anneal(self.max_lr, self.final_lr, (step - self.peak_step) / (last_step - self.peak_step))
