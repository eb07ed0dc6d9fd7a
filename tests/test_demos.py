"""Every demo in demos/ runs top to bottom in quick mode (SCRATCHVIT_QUICK=1, a few steps) in a
fresh interpreter and writes its figures as PNG files into SCRATCHVIT_OUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# demo -> (the modules it needs beyond numpy, the figures it writes)
DEMOS = {
    "autograd_tour": (("matplotlib",), ("finite_difference_error.png",)),
    "vit_digits": (("matplotlib", "sklearn"), ("training_curves.png", "predictions.png", "attention_rollout.png")),
    "mae_pretrain": (
        ("matplotlib", "sklearn"),
        ("mae_reconstruction.png", "mae_pretraining_loss.png", "finetune_mae.png", "finetune_random_init.png"),
    ),
    "swin_windows": (
        ("matplotlib", "sklearn"),
        ("swin_windows.png", "training_curves.png", "predictions.png", "relative_position_bias.png"),
    ),
}


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_demo_runs_in_quick_mode(name, tmp_path):
    modules, figures = DEMOS[name]
    for module in modules:
        pytest.importorskip(module)
    out = tmp_path / "out"
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    environment = dict(
        os.environ, SCRATCHVIT_QUICK="1", SCRATCHVIT_OUT=str(out), MPLBACKEND="Agg", PYTHONPATH=python_path
    )
    # the quick runs multiply small matrices: one BLAS thread is as fast, and on a busy machine
    # OpenBLAS threads that spin against other processes made them 5-10x slower
    environment.setdefault("OPENBLAS_NUM_THREADS", "1")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "demos" / f"{name}.py")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, f"{name} failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    assert str(out) in completed.stdout  # it says where its figures are
    for figure in figures:
        path = out / figure
        assert path.is_file(), f"{name} did not write {figure}; it wrote {sorted(p.name for p in out.iterdir())}"
        with open(path, "rb") as file:
            assert file.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
        assert path.stat().st_size > 1000
