"""The model summary: per-layer shapes, parameters and multiply-adds, the published totals, and
the `scratchvit summary` command."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import nn
from scratchvit.app.cli import main
from scratchvit.models.summary import format_count, input_shape_for, summarize
from scratchvit.models.vit import VisionTransformer


def _expected_vit_macs(batch, grid, patch, in_chans, dim, depth, mlp_ratio, num_classes, class_token=True):
    """Hand count: patch projection, per block qkv + proj + fc1 + fc2 and the two attention products, head."""
    patches = grid[0] * grid[1]
    tokens = patches + int(class_token)
    hidden = int(dim * mlp_ratio)
    projection = batch * patches * dim * in_chans * patch * patch
    linears = batch * tokens * (dim * 3 * dim + dim * dim + dim * hidden + hidden * dim)
    attention = 2 * batch * tokens * tokens * dim  # heads * head_dim = dim
    return projection + depth * (linears + attention) + batch * dim * num_classes


def test_small_vit_rows_and_totals_match_the_hand_count():
    model = VisionTransformer(img_size=(8, 12), patch_size=4, num_classes=5, embed_dim=16, depth=2, num_heads=4)
    model.train()
    summary = summarize(model, (2, 3, 8, 12))
    assert summary.total_macs == _expected_vit_macs(2, (2, 3), 4, 3, 16, 2, 4.0, 5)
    assert summary.total_params == model.num_parameters() == summary.trainable_params
    rows = {row.name: row for row in summary.rows}
    assert list(rows) == [name for name, _ in model.named_modules()]  # every module, in tree order
    assert rows[""].macs == summary.total_macs and rows[""].output_shape == "(2, 5)"
    assert rows["blocks.0.attn"].macs == 2 * 2 * 7 * 7 * 16 + 2 * 7 * (16 * 48 + 16 * 16)  # own + qkv + proj
    assert rows["blocks.0.attn.qkv"].output_shape == "(2, 7, 48)" and rows["blocks.0.attn.qkv"].depth == 4
    assert rows["patch_embed.proj"].macs == 2 * 6 * 16 * 3 * 4 * 4
    assert rows["blocks"].params == sum(p.size for name, p in model.named_parameters() if name.startswith("blocks."))
    assert model.training and all(not module._forward_hooks for module in model.modules())  # left as found


def test_modules_declare_their_own_multiply_adds():
    class Bilinear(nn.Module):
        """x^T W x per row, done without a Linear child: it must say what it costs."""

        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return (self.inner(x) * x).sum(axis=-1)

        def own_macs(self, inputs, output):
            return inputs[0].shape[0] * inputs[0].shape[1]

    summary = summarize(Bilinear(), (3, 4))
    assert summary.total_macs == 3 * 4 * 4 + 3 * 4
    assert [row.macs for row in summary.rows] == [3 * 4 * 4 + 3 * 4, 3 * 4 * 4]


def test_vit_base_matches_the_published_multiply_adds():
    """ViT-B/16 at 224: 17.6 G multiply-adds (timm's fvcore figure, the ViT paper's model)."""
    summary = summarize(sv.create_model("vit_base_patch16_224"), (1, 3, 224, 224))
    assert summary.total_params == 86_567_656
    assert abs(summary.total_macs / 17.6e9 - 1) < 0.02
    assert "17.56 G" in summary.totals() and "86.57 M" in summary.totals()


def test_swin_tiny_matches_the_published_multiply_adds():
    """Swin-T at 224: 4.5 G FLOPs (multiply-adds) in the Swin paper's Table 1."""
    model = sv.create_model("swin_tiny_patch4_window7_224")
    assert abs(summarize(model, input_shape_for(model)).total_macs / 4.5e9 - 1) < 0.02


def test_format_count_and_input_shape():
    assert [format_count(n) for n in (512, 86_567_656, 17_563_000_000)] == ["512", "86.57 M", "17.56 G"]
    model = VisionTransformer(img_size=(8, 12), patch_size=4, in_chans=1, embed_dim=8, depth=1, num_heads=2)
    assert input_shape_for(model, batch_size=3) == (3, 1, 8, 12)
    assert input_shape_for(model, img_size=16) == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        input_shape_for(model, batch_size=0)


def test_summary_command_prints_the_table(capsys):
    assert main(["summary", "vit_tiny_patch16_224", "--img-size", "32", "48", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "blocks.11.mlp.fc2 (Linear)" in out and "(2, 7, 192)" in out
    model = sv.create_model("vit_tiny_patch16_224", img_size=(32, 48))
    expected = _expected_vit_macs(2, (2, 3), 16, 3, 192, 12, 4.0, 1000)
    assert f"MACs: {format_count(expected)}" in out and f"{model.num_parameters():,}" in out
    assert "input (2, 3, 32, 48)" in out


def test_summary_command_depth_limits_rows(capsys):
    assert main(["summary", "vit_tiny_patch16_224", "--img-size", "32", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "  blocks (Sequential)" in out and "blocks.0" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "vit_nonexistent_model"], "unknown model 'vit_nonexistent_model'"),
        (["summary", "vit_tiny_patch16_224", "--img-size", "30"], "img_size 30 is not divisible by patch_size 16"),
        (["summary", "vit_tiny_patch16_224", "--img-size", "32", "32", "32"], "--img-size takes H or H W"),
    ],
)
def test_summary_command_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and not captured.out


def test_summary_row_counts_repeated_calls():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 3)

        def forward(self, x):
            return self.layer(self.layer(x))

    summary = summarize(Twice(), (2, 3))
    layer = summary.rows[1]
    assert (layer.calls, layer.macs) == (2, 2 * 2 * 3 * 3) and "x2" in summary.table()
    assert np.isclose(summary.total_macs, 36)
