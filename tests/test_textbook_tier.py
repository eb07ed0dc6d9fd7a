"""The textbook tier alone is the reference: with SCRATCHVIT_KERNELS=textbook (no kernel runs) the
golden parity of ViT, MAE and Swin with timm and the official MAE code, every op's gradient check
and the demos' quick mode all pass, in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def test_golden_parity_gradchecks_and_demos_on_the_textbook_tier():
    environment = dict(os.environ, SCRATCHVIT_KERNELS="textbook", PYTHONPATH=str(REPOSITORY))
    selection = [
        "tests/models/test_vit.py",
        "tests/models/test_mae.py",
        "tests/models/test_swin.py",
        "-k",
        "golden",
        "tests/test_demos.py",
    ]
    parity_and_demos = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = parity_and_demos.stdout.strip().splitlines()[-1]
    assert parity_and_demos.returncode == 0, parity_and_demos.stdout[-4000:] + parity_and_demos.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
    gradchecks = subprocess.run(
        [sys.executable, "-m", "scratchvit", "gradcheck", "--kernels", "textbook"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = gradchecks.stdout.strip().splitlines()
    assert gradchecks.returncode == 0 and lines[0] == "tier: textbook", gradchecks.stdout[-4000:] + gradchecks.stderr
    assert lines[-1].endswith(" passed, 0 failed")
