"""The course's task table: what a student implements, in which order, and which tests grade it.

Each task names its solution regions (`path::function`, marked in the source by `# BEGIN SOLUTION
<id> <function>` / `# END SOLUTION <id>`), the tests that grade it, the op-table entries it owns,
the tasks it builds on, its lecture note, its points and the seconds its tests take solved (on one
core of a 2-core laptop-class machine; `scratchvit course check` fails a task whose tests take over 3x).

Every test carries exactly one course marker (tests/conftest.py asks `course_marker`): a task's
(`task3_2` for task 3.2), `capstone` (a test that needs the whole library: training, the command,
the demos) or `framework` (a test of code no task blanks). A test is matched, most specific
first, by the op-table entry it is parametrized with, then by `file::test_name`, then by its file,
then by its folder; anything unmatched is `framework`.
"""

from __future__ import annotations

from dataclasses import dataclass

MODULES = {
    0: "the engine",
    1: "elementwise and reductions",
    2: "shapes, roll and the vision rearranges",
    3: "linear, activations, layer norm, losses, dropout",
    4: "attention",
    5: "capstones: ViT, MAE and Swin",
}
CAPSTONE, FRAMEWORK = "capstone", "framework"


@dataclass(frozen=True)
class Task:
    """One task. regions: 'path::function' of each solution region; tests: selectors ('tests/x.py',
    'tests/x.py::test_name' or a folder 'tests/x/'); ops: op-table entries it owns; depends: the ids
    of the tasks it builds on (the closure is taken); notes: the lecture note, under notes/."""

    id: str
    title: str
    regions: tuple
    tests: tuple
    depends: tuple
    notes: str
    points: int
    expected_seconds: float
    ops: tuple = ()

    @property
    def module(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def marker(self) -> str:
        """The pytest marker of the task's tests: 'task3_2' for task 3.2."""
        return "task" + self.id.replace(".", "_")


_ENGINE = ("0.1", "0.2")
_M1 = _ENGINE + ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7")
_M2 = _M1 + ("2.1", "2.2", "2.3", "2.4", "2.5")
_M3 = _M2 + ("3.1", "3.2", "3.3", "3.4", "3.5", "3.6")
_M4 = _M3 + ("4.1", "4.2")

_OPS = "scratchvit/ops/"
_ELEMENTWISE, _REDUCE, _SHAPE, _VISION = (
    _OPS + name for name in ("elementwise.py", "reduce.py", "shape.py", "vision.py")
)
_AUTOGRAD_TESTS, _ELEMENTWISE_TESTS = "tests/test_autograd.py", "tests/ops/test_elementwise.py"
_REDUCE_TESTS, _SHAPE_TESTS, _VISION_TESTS = (
    "tests/ops/test_reduce.py",
    "tests/ops/test_shape.py",
    "tests/ops/test_vision.py",
)
# tests of the engine and of M1's ops that reach the ops up to Sum (their .sum().backward()): graded with task 1.6
_ENGINE_ON_OPS = tuple(
    f"{_AUTOGRAD_TESTS}::{name}"
    for name in (
        "test_a_",
        "test_backward_frees_the_saved",
        "test_backward_twice",
        "test_binary_op_gradients",
        "test_detach_",
        "test_leaf_grad_",
        "test_retain_graph_",
    )
) + tuple(
    f"{_ELEMENTWISE_TESTS}::{name}"
    for name in (
        "test_cast_",
        "test_ndarray_on_the_left",
        "test_pow_",
        "test_python_and_numpy_scalars",
        "test_reflected_operator_gradients",
    )
)
_NOTE_AUTOGRAD, _NOTE_ELEMENTWISE, _NOTE_SHAPES = (
    "01_autograd.md",
    "02_elementwise_reductions.md",
    "03_shapes_rearranges.md",
)

TASKS = (
    # ---- M0: the engine ----------------------------------------------------------------------
    Task(
        "0.1",
        "The backward pass: a topological order without recursion",
        ("scratchvit/autograd.py::_topological_order",),
        (_AUTOGRAD_TESTS, "tests/check/test_gradcheck.py", "tests/check/test_cli_gradcheck.py"),
        (),
        _NOTE_AUTOGRAD,
        10,
        2,
    ),
    Task(
        "0.2",
        "unbroadcast: summing a gradient back to its input's shape",
        ("scratchvit/autograd.py::unbroadcast",),
        (
            f"{_AUTOGRAD_TESTS}::test_unbroadcast",
            f"{_AUTOGRAD_TESTS}::test_broadcast_then_unbroadcast",
        ),
        ("0.1",),
        _NOTE_AUTOGRAD,
        5,
        2,
    ),
    # ---- M1: elementwise and reductions ---------------------------------------------------------
    Task(
        "1.1",
        "Add, Sub, Neg",
        (f"{_ELEMENTWISE}::Add.backward", f"{_ELEMENTWISE}::Sub.backward", f"{_ELEMENTWISE}::Neg.backward"),
        (_ELEMENTWISE_TESTS,),
        _ENGINE,
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("add", "sub", "neg", "add_same_shape"),
    ),
    Task(
        "1.2",
        "Mul and Div",
        (f"{_ELEMENTWISE}::Mul.backward", f"{_ELEMENTWISE}::Div.backward"),
        (),
        _ENGINE + ("1.1",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("mul", "div"),
    ),
    Task(
        "1.3",
        "Pow, with a constant and with a tensor exponent",
        (f"{_ELEMENTWISE}::PowConstant.backward", f"{_ELEMENTWISE}::Pow.backward"),
        (),
        _ENGINE + ("1.2",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("pow_tensor", "pow_int", "pow_float"),
    ),
    Task(
        "1.4",
        "Exp, Log, Sqrt, Tanh, Abs",
        tuple(f"{_ELEMENTWISE}::{name}.backward" for name in ("Exp", "Log", "Sqrt", "Tanh", "Abs")),
        (),
        _ENGINE + ("1.3",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("exp", "log", "sqrt", "tanh", "abs"),
    ),
    Task(
        "1.5",
        "Maximum, Where, Cast",
        tuple(f"{_ELEMENTWISE}::{name}.backward" for name in ("Maximum", "Where", "Cast")),
        (
            f"{_ELEMENTWISE_TESTS}::test_maximum_",
            f"{_ELEMENTWISE_TESTS}::test_where_",
            f"{_AUTOGRAD_TESTS}::test_where_",
        ),
        _ENGINE + ("1.4",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("maximum", "where", "cast"),
    ),
    Task(
        "1.6",
        "Sum and Mean",
        (f"{_REDUCE}::_expand_to_input", f"{_REDUCE}::Sum.backward", f"{_REDUCE}::Mean.backward"),
        (_REDUCE_TESTS, *_ENGINE_ON_OPS),
        _ENGINE + ("1.5",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("sum", "sum_all", "mean"),
    ),
    Task(
        "1.7",
        "Max (ties share) and Var (two passes)",
        (f"{_REDUCE}::Max.backward", f"{_REDUCE}::Var.forward", f"{_REDUCE}::Var.backward"),
        (
            f"{_REDUCE_TESTS}::test_max_",
            f"{_REDUCE_TESTS}::test_var_",
            f"{_REDUCE_TESTS}::test_reduction",
        ),
        _ENGINE + ("1.6",),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("max", "max_all", "var", "var_unbiased"),
    ),
    # ---- M2: shapes, roll and the vision rearranges ---------------------------------------------
    Task(
        "2.1",
        "Reshape, Permute (the inverse permutation), Expand",
        (
            f"{_SHAPE}::inverse_permutation",
            f"{_SHAPE}::Reshape.backward",
            f"{_SHAPE}::Permute.backward",
            f"{_SHAPE}::Expand.backward",
        ),
        (_SHAPE_TESTS,),
        _M1,
        _NOTE_SHAPES,
        5,
        2,
        ("reshape", "permute", "transpose", "expand"),
    ),
    Task(
        "2.2",
        "Indexing: GetItem and TakeAlongAxis (repeated indices add up)",
        (f"{_SHAPE}::GetItem.backward", f"{_SHAPE}::TakeAlongAxis.backward"),
        (f"{_SHAPE_TESTS}::test_getitem_", f"{_SHAPE_TESTS}::test_take_along_axis_"),
        _M1,
        _NOTE_SHAPES,
        5,
        2,
        (
            "getitem_slice",
            "getitem_int_array",
            "getitem_bool_mask",
            "take_along_axis",
            "take_along_axis_broadcast",
        ),
    ),
    Task(
        "2.3",
        "Concatenate, Stack, Pad (and Split through GetItem)",
        (f"{_SHAPE}::Concatenate.backward", f"{_SHAPE}::Stack.backward", f"{_SHAPE}::Pad.backward"),
        (f"{_SHAPE_TESTS}::test_concatenate_", f"{_SHAPE_TESTS}::test_pad_"),
        _M1 + ("2.2",),
        _NOTE_SHAPES,
        5,
        2,
        ("concatenate", "stack", "pad", "split", "split_sections"),
    ),
    Task(
        "2.4",
        "Roll (Swin's cyclic shift) and the move between devices",
        (f"{_SHAPE}::Roll.backward", f"{_SHAPE}::ToDevice.backward"),
        (f"{_SHAPE_TESTS}::test_roll_", "tests/test_backend.py::test_to_device_passes_gradients_back"),
        _M1,
        _NOTE_SHAPES,
        5,
        2,
        ("roll",),
    ),
    Task(
        "2.5",
        "The vision rearranges: patchify, window_partition and their inverses",
        (f"{_VISION}::Rearrange.backward", f"{_VISION}::patchify", f"{_VISION}::window_partition"),
        (_VISION_TESTS,),
        _M1 + ("2.1",),
        _NOTE_SHAPES,
        10,
        2,
        ("patchify", "unpatchify", "window_partition", "window_reverse"),
    ),
    # ---- M3: linear, activations, layer norm, losses, dropout -----------------------------------
    Task(
        "3.1",
        "MatMul and Linear, by differentials",
        (
            f"{_OPS}products.py::MatMul.backward",
            f"{_OPS}products.py::LinearFn.forward",
            f"{_OPS}products.py::LinearFn.backward",
        ),
        (
            "tests/ops/test_products.py",
            f"{_AUTOGRAD_TESTS}::test_matmul_",
            "tests/nn/test_module.py::test_forward_hook_",
            "tests/nn/test_module.py::test_sequential_",
            "tests/nn/test_module.py::test_patch_embed_equals",
        ),
        _M2,
        "04_linear.md",
        10,
        2,
        (
            "matmul",
            "matmul_vector_matrix",
            "matmul_matrix_vector",
            "matmul_vector_vector",
            "linear",
            "linear_no_bias",
        ),
    ),
    Task(
        "3.2",
        "Layer norm, forward and backward",
        (f"{_OPS}norm.py::LayerNormFn.forward", f"{_OPS}norm.py::LayerNormFn.backward"),
        ("tests/ops/test_norm.py",),
        _M2,
        "06_layer_norm.md",
        10,
        2,
        ("layer_norm", "layer_norm_no_affine"),
    ),
    Task(
        "3.3",
        "GELU (Phi + x phi) and ReLU",
        (
            f"{_OPS}activation.py::GELUFn.forward",
            f"{_OPS}activation.py::GELUFn.backward",
            f"{_OPS}activation.py::ReLU.backward",
        ),
        (
            "tests/ops/test_activation.py::test_gelu_",
            "tests/ops/test_activation.py::test_relu_",
            f"{_AUTOGRAD_TESTS}::test_backward_frees_each_activation",
        ),
        _M2 + ("3.1", "3.2"),
        "07_gelu.md",
        5,
        2,
        ("gelu", "relu"),
    ),
    Task(
        "3.4",
        "Softmax and log-softmax",
        (
            f"{_OPS}activation.py::Softmax.forward",
            f"{_OPS}activation.py::Softmax.backward",
            f"{_OPS}activation.py::LogSoftmax.forward",
            f"{_OPS}activation.py::LogSoftmax.backward",
        ),
        ("tests/ops/test_activation.py",),
        _M2 + ("3.1", "3.2", "3.3"),
        "05_softmax_cross_entropy.md",
        10,
        2,
        ("softmax", "softmax_axis1", "log_softmax"),
    ),
    Task(
        "3.5",
        "Cross-entropy (with label smoothing) and MSE",
        (
            f"{_OPS}loss.py::CrossEntropy.forward",
            f"{_OPS}loss.py::CrossEntropy.backward",
            f"{_OPS}loss.py::MSELoss.backward",
        ),
        ("tests/ops/test_loss.py",),
        _M2 + ("3.1", "3.2", "3.3", "3.4"),
        "05_softmax_cross_entropy.md",
        10,
        2,
        (
            "cross_entropy",
            "cross_entropy_soft",
            "cross_entropy_smoothing",
            "cross_entropy_sum",
            "cross_entropy_none",
            "mse_loss",
            "mse_loss_sum",
            "mse_loss_none",
        ),
    ),
    Task(
        "3.6",
        "Dropout and drop path",
        (f"{_OPS}random.py::MaskAndScale.backward", f"{_OPS}random.py::keep_mask"),
        ("tests/ops/test_random.py", "tests/check/test_op_table.py::test_fixed_seed_ops_"),
        _M2 + ("3.1", "3.2", "3.3", "3.4", "3.5"),
        _NOTE_ELEMENTWISE,
        5,
        2,
        ("dropout", "drop_path"),
    ),
    # ---- M4: attention --------------------------------------------------------------------------
    Task(
        "4.1",
        "Scaled dot-product attention: scores, softmax, dropout, and the backward",
        (
            f"{_OPS}attention.py::attention_scores",
            f"{_OPS}attention.py::AttentionFunction.attend",
            f"{_OPS}attention.py::AttentionFunction.attend_backward",
            f"{_OPS}attention.py::ScaledDotProductAttention.backward",
        ),
        ("tests/ops/test_attention.py",),
        _M3,
        "08_attention.md",
        15,
        5,
        (
            "scaled_dot_product_attention",
            "scaled_dot_product_attention_bias",
            "scaled_dot_product_attention_mask",
            "scaled_dot_product_attention_bool_mask",
            "scaled_dot_product_attention_dropout",
        ),
    ),
    Task(
        "4.2",
        "Multi-head self-attention straight from qkv",
        (
            f"{_OPS}attention.py::MultiHeadSelfAttention.forward",
            f"{_OPS}attention.py::MultiHeadSelfAttention.backward",
        ),
        (
            "tests/ops/test_attention.py::test_multi_head_",
            "tests/nn/test_module.py::test_attention_equals",
            "tests/nn/test_module.py::test_block_backward",
        ),
        _M3 + ("4.1",),
        "08_attention.md",
        10,
        5,
        ("multi_head_self_attention", "multi_head_self_attention_bias_mask", "multi_head_self_attention_dropout"),
    ),
    # ---- M5: capstones, each gated by golden parity with timm and the official MAE --------------
    Task(
        "5.1",
        "ViT: class token, position embedding, pooling; parity with timm",
        ("scratchvit/models/vit.py::VisionTransformer._pos_embed", "scratchvit/models/vit.py::VisionTransformer.pool"),
        ("tests/models/test_vit.py",),
        _M4,
        "08_attention.md",
        20,
        15,
    ),
    Task(
        "5.2",
        "MAE: random masking by argsort, ids_restore, the loss on masked patches; parity with the official MAE",
        (
            "scratchvit/models/mae.py::MaskedAutoencoderViT.random_masking",
            "scratchvit/models/mae.py::MaskedAutoencoderViT.forward_loss",
        ),
        ("tests/models/test_mae.py",),
        _M4 + ("5.1",),
        "10_mae.md",
        20,
        15,
    ),
    Task(
        "5.3",
        "Swin: relative position index, shifted-window mask, patch merging; parity with timm",
        (
            "scratchvit/models/swin.py::relative_position_index",
            "scratchvit/models/swin.py::shifted_window_regions",
            "scratchvit/models/swin.py::shifted_window_mask",
            "scratchvit/models/swin.py::WindowAttention.relative_position_bias",
            f"{_VISION}::patch_merge",
        ),
        ("tests/models/test_swin.py", f"{_VISION_TESTS}::test_patch_merge_"),
        _M4,
        "09_swin.md",
        20,
        15,
        ("patch_merge",),
    ),
)

# Tests that need the whole library; everything not matched by a task or here is `framework`.
CAPSTONE_TESTS = (
    "tests/app/",
    "tests/train/",
    "tests/cuda/",
    "tests/course/",
    "tests/io/test_checkpoint.py",
    "tests/models/test_pretrained.py",
    "tests/models/test_summary.py",
    "tests/models/test_transfer.py",
    "tests/nn/test_batchnorm.py",
    "tests/nn/test_module.py::test_zero_grad_apply",
    "tests/test_demos.py",
    "tests/check/test_cli_gradcheck.py::test_gradcheck_command_checks_every_op",
    "tests/check/test_op_table.py::test_every_op_agrees_between_cpu_and_gpu",
)

# Tests of what the student copy leaves out (the fast tier, the benchmarks): the copy deselects them.
LEFT_OUT_TESTS = (
    "tests/app/test_recipes.py::test_benchmark_times_the_phases_and_profiles_the_ops",
    "tests/train/test_distributed.py::test_the_scaling_benchmark_reads_each_ranks_results_from_its_own_file",
)

BY_ID = {task.id: task for task in TASKS}
BY_MARKER = {task.marker: task for task in TASKS}
COURSE_MARKERS = tuple(task.marker for task in TASKS) + (CAPSTONE, FRAMEWORK)
OP_OWNER = {op: task.id for task in TASKS for op in task.ops}


def closure(task_id: str) -> set:
    """The task and every task it builds on, directly or through others."""
    seen, pending = set(), [task_id]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(BY_ID[current].depends)
    return seen


def module_tasks(module: int) -> list:
    return [task for task in TASKS if task.module == module]


def _selector_rank(selector: str, path: str, test_name: str) -> tuple:
    """How specifically `selector` matches a test: (3: by name, 2: by file, 1: by folder, 0: not at
    all; then the selector's length, so that of two matching names the longer prefix wins)."""
    if "::" in selector:
        file, prefix = selector.split("::", 1)
        level = 3 if file == path and test_name.startswith(prefix) else 0
    elif selector.endswith("/"):
        level = 1 if path.startswith(selector) else 0
    else:
        level = 2 if selector == path else 0
    return (level, len(selector)) if level else (0, 0)


def course_marker(path: str, test_name: str, op_entry: str | None = None) -> str:
    """The one course marker of the test `test_name` in `path` (relative to the repository, e.g.
    'tests/ops/test_norm.py'); op_entry: the op-table entry it is parametrized with, if any."""
    if op_entry is not None and op_entry in OP_OWNER:
        return BY_ID[OP_OWNER[op_entry]].marker
    best, marker = (0, 0), FRAMEWORK
    candidates = [(task.marker, selector) for task in TASKS for selector in task.tests]
    candidates += [(CAPSTONE, selector) for selector in CAPSTONE_TESTS]
    for name, selector in candidates:
        rank = _selector_rank(selector, path, test_name)
        if rank > best:
            best, marker = rank, name
    return marker
