"""The `scratchvit` command: argparse sub-commands, each a small function that calls the library (the
training commands call scratchvit.app.recipes, whose keywords the parser's names match); `scratchvit CMD
--help` ends with an example.

A wrong argument, a missing file, a data set or checkpoint in the wrong format, a device that is
not there: one line on stderr, `scratchvit CMD: error: ...`, and exit code 2.

`mpirun -n N scratchvit train|pretrain|linprobe|finetune|eval ...` runs data-parallel (the recipes
join the MPI job, see scratchvit.train.distributed); there an error on any rank names that rank and
ends every rank with exit code 2, so the job never hangs waiting for the one that failed.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import platform
import sys
import textwrap
import typing

import numpy as np

from .. import backend, kernels
from ..data import DATASET_NAMES
from ..train import NonFiniteLossError, distributed
from . import demo, launch, recipes
from .recipes import DEFAULT_OUT, SCHEDULES, WORKLOADS


class _Parser(argparse.ArgumentParser):
    """argparse that reports a wrong argument as one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low: int):
    """An argparse type: an int >= low (a count, a size, a seed)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {value}")
        return value

    return parse


def _finite_float(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite float between low and high (either end excluded when open);
    inf and nan are refused where they enter."""
    if high == math.inf:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        inside = low < value if low_open else low <= value
        inside = inside and (value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_POSITIVE_INT, _NON_NEGATIVE_INT = _int_at_least(1), _int_at_least(0)
_POSITIVE, _NON_NEGATIVE, _FRACTION = _finite_float(0, low_open=True), _finite_float(0), _finite_float(0, 1)


def _add_common(parser: argparse.ArgumentParser, writes_files: bool = False) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: $SCRATCHVIT_DEVICE or cpu)")
    parser.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0, help="seed for every random generator (default 0)")
    if writes_files:
        parser.add_argument(
            "--out",
            dest="out_dir",
            default=DEFAULT_OUT,
            metavar="DIR",
            help=f"folder for what the command writes (default ./{DEFAULT_OUT}/)",
        )


def _key_value(text: str) -> tuple:
    """'KEY=VALUE' -> (KEY, VALUE as a Python literal, or the text itself when it is not one)."""
    key, separator, value = text.partition("=")
    if not separator or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a keyword name, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word: global_pool=avg


def _image_size(values):
    """--img-size H [W] -> None, H, or (H, W)."""
    if values is None:
        return None
    if len(values) > 2:
        raise ValueError(f"--img-size takes H or H W, got {len(values)} numbers: {' '.join(map(str, values))}")
    return values[0] if len(values) == 1 or values[0] == values[1] else tuple(values)


def _add_img_size(parser, default_text: str) -> None:
    parser.add_argument(
        "--img-size",
        type=_POSITIVE_INT,
        nargs="+",
        metavar=("H", "W"),
        help=f"image size: H, or H W (default: {default_text})",
    )


def _add_model_overrides(parser) -> None:
    group = parser.add_argument_group("model keywords (timm's names; default: the registered configuration)")
    _add_img_size(group, "the data set's")
    group.add_argument("--patch-size", type=_POSITIVE_INT, help="patch size P")
    group.add_argument("--embed-dim", type=_POSITIVE_INT, help="token width D")
    group.add_argument("--depth", type=_POSITIVE_INT, help="number of blocks")
    group.add_argument("--num-heads", type=_POSITIVE_INT, help="attention heads")
    group.add_argument(
        "--model-arg",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other keyword as a Python literal (repeatable), e.g. drop_path_rate=0.1",
    )


def _model_kwargs(args) -> dict:
    """The model keywords given on the command line."""
    named = {
        "img_size": _image_size(args.img_size),
        "patch_size": args.patch_size,
        "embed_dim": args.embed_dim,
        "depth": args.depth,
        "num_heads": args.num_heads,
    }
    kwargs = {key: value for key, value in named.items() if value is not None}
    for key, value in args.model_arg:
        if key in kwargs:
            raise ValueError(f"argument --model-arg: {key}= gives a value that was given already ({kwargs[key]!r})")
        _check_model_arg(getattr(args, "model_name", None), key, value)
        kwargs[key] = value
    return kwargs


_KEYWORD_TYPES = {  # an annotation's name -> (the types it takes, in words)
    "int": ((int,), "an int"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "True or False"),
    "str": ((str,), "a word"),
    "None": ((type(None),), "None"),
    "tuple": ((tuple, list), "a tuple"),
}


def _expected_types(parameter: inspect.Parameter) -> list:
    """The type names a model keyword takes: its annotation's, else its default's (an int default
    without annotation is a size: N or (H, W))."""
    if parameter.annotation is not inspect.Parameter.empty:
        return [part.strip().split("[")[0] for part in str(parameter.annotation).split("|")]
    default = parameter.default
    if isinstance(default, bool):
        return ["bool"]
    if isinstance(default, int):
        return ["int", "tuple"]
    return [type(default).__name__] if type(default).__name__ in _KEYWORD_TYPES else []


def _check_model_arg(model_name, key: str, value) -> None:
    """ValueError naming --model-arg KEY when VALUE is not of the type the model's constructor
    takes for KEY (keywords it does not know are left to the constructor to refuse)."""
    if model_name is None:
        return
    from ..models.registry import model_entrypoint

    model_class = typing.get_type_hints(model_entrypoint(model_name)[1]).get("return")
    parameter = inspect.signature(model_class.__init__).parameters.get(key) if model_class else None
    names = [name for name in _expected_types(parameter) if name in _KEYWORD_TYPES] if parameter else []
    if not names:
        return
    accepted = tuple(kind for name in names for kind in _KEYWORD_TYPES[name][0])
    if not isinstance(value, accepted) or (isinstance(value, bool) and "bool" not in names):
        expected = " or ".join(_KEYWORD_TYPES[name][1] for name in names)
        raise ValueError(
            f"argument --model-arg: {key} takes {expected} for {model_class.__name__}, "
            f"got {value!r} ({type(value).__name__})"
        )


def _add_data(parser) -> None:
    parser.add_argument(
        "--data",
        default="digits",
        choices=DATASET_NAMES,
        help="data set (default digits, which ships with scikit-learn)",
    )
    parser.add_argument(
        "--data-root", metavar="DIR", help="the data set's folder (all but digits): the idx, CIFAR or image files"
    )


def _add_procs(parser) -> None:
    parser.add_argument(
        "--procs",
        type=launch.procs_count,
        metavar="N",
        help="run N single-threaded ranks of this command under mpiexec (default: this process)",
    )


def _add_training(parser, epochs: int, batch_size: int, warmup_text: str = "a tenth of --epochs") -> None:
    parser.add_argument("--epochs", type=_POSITIVE_INT, default=epochs, help=f"epochs (default {epochs})")
    parser.add_argument(
        "--batch-size", type=_POSITIVE_INT, default=batch_size, help=f"images per step (default {batch_size})"
    )
    parser.add_argument("--warmup-epochs", type=_NON_NEGATIVE, help=f"linear lr warmup (default: {warmup_text})")
    parser.add_argument("--resume", metavar="PATH", help="a checkpoint of this run to go on from")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace another run's checkpoint and metrics in --out"
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="let --resume go on with settings other than the checkpoint's (batch size, lr, schedule, ...)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars or per-epoch lines"
    )


def _add_base_lr(parser, blr: float) -> None:
    parser.add_argument(
        "--blr", type=_POSITIVE, default=blr, help=f"base lr: lr = blr * batch_size / 256 (default {blr})"
    )
    parser.add_argument("--lr", type=_POSITIVE, help="absolute lr (overrides --blr)")


def _call(recipe, args, **computed):
    """Call `recipe` with every parsed argument named as one of its parameters (the parser's dest
    names are the recipes' keywords), and the `computed` ones."""
    if getattr(args, "data", "digits") != "digits" and args.data_root is None:
        raise ValueError(f"--data {args.data} needs --data-root DIR, the folder that holds its files")
    parameters = inspect.signature(recipe).parameters
    given = {name: value for name, value in vars(args).items() if name in parameters}
    return recipe(**{**given, **computed})


def cmd_demo(args) -> int:
    """The digits demo: a small ViT trained, evaluated and drawn (scratchvit.app.demo.run_demo)."""
    _call(demo.run_demo, args, epochs=2 if args.quick else args.epochs)
    return 0


def _weights(args):
    """--pretrained: a path as given, or `hub`: the model's weights file, downloaded into the hub cache."""
    if args.pretrained != "hub":
        return args.pretrained
    from ..models import hub

    return hub.pretrained_file(args.model_name)


def cmd_train(args) -> int:
    """Train a classifier (recipes.train_classifier)."""
    _call(recipes.train_classifier, args, model_kwargs=_model_kwargs(args), pretrained=_weights(args))
    return 0


def cmd_pretrain(args) -> int:
    """MAE pre-training (recipes.pretrain_mae)."""
    _call(recipes.pretrain_mae, args, model_kwargs=_model_kwargs(args))
    return 0


def cmd_linprobe(args) -> int:
    """Linear probe of an MAE encoder (recipes.linear_probe)."""
    _call(recipes.linear_probe, args, img_size=_image_size(args.img_size))
    return 0


def cmd_finetune(args) -> int:
    """Fine-tune an MAE encoder (recipes.fine_tune)."""
    _call(recipes.fine_tune, args, img_size=_image_size(args.img_size))
    return 0


def cmd_eval(args) -> int:
    """Top-1 / top-5 of a classifier on a data split (recipes.evaluate_model)."""
    if (args.checkpoint is None) == (args.pretrained is None) or (args.model_name is None) == (args.checkpoint is None):
        raise ValueError("give --checkpoint PATH (a scratchvit checkpoint), or --model NAME with --pretrained PATH")
    _call(recipes.evaluate_model, args, model_kwargs=_model_kwargs(args), pretrained=_weights(args))
    return 0


def cmd_convert(args) -> int:
    """A weights file of any readable format -> a timm-keyed safetensors file (models.pretrained.convert_checkpoint)."""
    from ..models import convert_checkpoint

    written = convert_checkpoint(args.src, args.dst, args.model_name, **_model_kwargs(args))
    print(f"wrote {written} ({args.model_name}, timm's keys)")
    return 0


def cmd_predict(args) -> int:
    """Top-k ImageNet classes of photos, and where the model looks (app.predict.run_predict)."""
    from .predict import run_predict

    pretrained = args.pretrained or "hub"
    lines = run_predict(args.images, args.model_name, pretrained, args.top, args.attention, _model_kwargs(args))
    print("\n".join(lines))
    return 0


def cmd_mae_visualize(args) -> int:
    """The MAE reconstruction panels of a photo (app.predict.run_mae_visualize)."""
    from .predict import run_mae_visualize

    pretrained, kwargs = args.pretrained or "hub", _model_kwargs(args)
    written = run_mae_visualize(
        args.image, args.model_name, args.output, pretrained, args.mask_ratio, args.seed, model_kwargs=kwargs
    )
    print(f"wrote {written}")
    return 0


def cmd_bench(args) -> int:
    """Median training-step time on a workload, and with --profile the time per op (recipes.benchmark)."""
    _call(recipes.benchmark, args)
    return 0


def cmd_gradcheck(args) -> int:
    """Finite-difference check of every op; a table, and exit code 1 on any failure."""
    from ..check.op_table import run_gradchecks

    rows = run_gradchecks(device=args.device, seed=args.seed, only=args.op, tier=args.kernels)
    print(f"tier: {args.kernels}")
    name_width = max(len("op"), *(len(row.op) for row in rows))
    shape_width = max(len("input shapes"), *(len(row.shapes) for row in rows))
    print(f"{'op':<{name_width}}  {'input shapes':<{shape_width}}  {'max rel error':>13}  result")
    for row in rows:
        result = "pass" if row.passed else f"FAIL {row.message}"
        print(f"{row.op:<{name_width}}  {row.shapes:<{shape_width}}  {row.max_relative_error:>13.2e}  {result}")
    failures = sum(not row.passed for row in rows)
    print(f"{len(rows) - failures} passed, {failures} failed")
    return 1 if failures else 0


def cmd_course(args) -> int:
    """The course: export a student copy, grade one, or check that every task is sound."""
    from pathlib import Path

    from ..course import check, export, grade

    if args.action == "export":
        blanked = export.export(export.repository(), Path(args.out), module=args.module, solution=args.solution)
        print(f"wrote {args.out}: {len(blanked)} task(s) blanked {' '.join(sorted(blanked))}".rstrip())
        return 0
    if args.action == "grade":
        grades = grade.grade(Path(args.dir), Path(args.out) if args.out else None, task_ids=args.task)
        print(f"{grades['earned']} of {grades['points']} points; grades.json and grades.csv in {args.out or args.dir}")
        return 0
    result = check.run_check(export.repository(), workers=args.workers, keep=Path(args.keep) if args.keep else None)
    print("\n".join(check.report_lines(result)))
    return 0 if result.passed else 1


def cmd_info(args) -> int:
    """Versions, the array backend and its BLAS, the devices."""
    print(f"scratchvit {_version()}  python {platform.python_version()}  numpy {np.__version__}")
    blas = _blas_name()
    print(f"BLAS: {blas}")
    print(f"default device: {backend.default_device()}")
    if backend.cuda_is_available():
        cupy = backend.get_device("cuda").xp
        print(f"CUDA: cupy {cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} GPU(s)")
    else:
        print("CUDA: not available (pip install 'scratchvit[cuda12]' on a machine with an NVIDIA GPU)")
    print(f"kernel tier: {kernels.current_tier()} (SCRATCHVIT_KERNELS=textbook runs every op as ops/ writes it)")
    registrations = {}  # (op name, backend, kernel) -> its entries, one line per kernel
    for entry in kernels.registered_kernels():
        registrations.setdefault((entry.op_name, entry.backend, entry.kernel), []).append(entry)
    op_width = max((len(op_name) for op_name, _, _ in registrations), default=0)  # none in a course copy
    for (op_name, backend_name, kernel), entries in registrations.items():
        where = f"{backend_name} {'/'.join(entry.dtype.name for entry in entries)}"
        print(f"  {op_name:<{op_width}}  {where:<21}  {kernel.__name__}: {entries[0].summary}")
    return 0


def cmd_summary(args) -> int:
    """A per-layer table of a registered model: output shapes, parameters, multiply-adds."""
    from ..models import create_model
    from ..models.summary import input_shape_for, summarize

    img_size = _image_size(args.img_size)
    model = create_model(args.name, **({} if img_size is None else {"img_size": img_size}))
    summary = summarize(model, input_shape_for(model, args.batch_size, img_size))
    print(f"{args.name}")
    print(summary.table(max_depth=args.depth))
    return 0


def _version() -> str:
    from .. import __version__

    return __version__


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def _command(commands, name: str, help_text: str, description: str, example: str) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with an example command line, kept on one line to copy."""
    return commands.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(description, 100),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchvit", description="Vision Transformers from scratch on NumPy or CuPy.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo_parser = _command(
        commands,
        "demo",
        "train a small ViT on the digits and draw what it learned",
        "Train a 136k-parameter ViT on scikit-learn's 8x8 digits (AdamW, one-cycle, label "
        "smoothing), then write training curves, test predictions and attention maps as PNGs "
        "into --out.",
        "scratchvit demo --epochs 60 --out runs/demo",
    )
    _add_common(demo_parser, writes_files=True)
    demo_parser.add_argument(
        "--epochs", type=_POSITIVE_INT, default=demo.DIGITS_EPOCHS, help=f"epochs (default {demo.DIGITS_EPOCHS})"
    )
    demo_parser.add_argument("--quick", action="store_true", help="2 epochs: a smoke test, not a trained model")
    demo_parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    demo_parser.add_argument("--overwrite", action="store_true", help="replace another run's files in --out")
    demo_parser.set_defaults(run=cmd_demo)

    train = _command(
        commands,
        "train",
        "train a classifier (ViT, Swin) on a data set",
        "Train a registered classifier from scratch (or from --pretrained weights) with AdamW, "
        "label smoothing and a cosine or one-cycle schedule, evaluating on the test split after "
        "every epoch. num_classes, in_chans and img_size default to the data set's. Writes "
        "checkpoint.npz and metrics.jsonl into --out.",
        "scratchvit train --model vit_tiny_patch16_224 --data digits --patch-size 2 --embed-dim 64 "
        "--depth 4 --num-heads 4 --epochs 30 --out runs/vit",
    )
    _add_common(train, writes_files=True)
    train.add_argument("--model", dest="model_name", required=True, help="a registered classifier (sv.list_models())")
    _add_data(train)
    _add_training(train, epochs=30, batch_size=64, warmup_text="a tenth of --epochs (onecycle: 30%% of the steps)")
    train.add_argument("--lr", type=_POSITIVE, default=1e-3, help="peak learning rate (default 1e-3)")
    train.add_argument("--weight-decay", type=_NON_NEGATIVE, default=0.05, help="AdamW weight decay (default 0.05)")
    train.add_argument("--label-smoothing", type=_FRACTION, default=0.1, help="default 0.1")
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="default cosine")
    train.add_argument("--clip-grad", type=_POSITIVE, metavar="NORM", help="clip the global gradient norm")
    train.add_argument(
        "--pretrained",
        metavar="PATH",
        help="start from these weights (.pth, .safetensors, .npz, or `hub`: the model's weights from the hub); "
        "a head for other classes is made new",
    )
    _add_model_overrides(train)
    _add_procs(train)
    train.set_defaults(run=cmd_train)

    pretrain = _command(
        commands,
        "pretrain",
        "pre-train a masked autoencoder (MAE)",
        "MAE pre-training as He et al. 2022, Appendix A.1: AdamW betas (0.9, 0.95), weight decay "
        "0.05, lr = blr * batch / 256 with blr 1.5e-4, cosine schedule after a linear warmup, mask "
        "ratio 0.75, random-resized crops and flips. in_chans and img_size default to the data "
        "set's. Writes checkpoint.npz and metrics.jsonl into --out.",
        "scratchvit pretrain --model mae_vit_base_patch16 --data cifar10 --data-root data/cifar "
        "--patch-size 4 --epochs 100 --norm-pix-loss --out runs/mae",
    )
    _add_common(pretrain, writes_files=True)
    pretrain.add_argument(
        "--model", dest="model_name", default="mae_vit_base_patch16", help="a registered MAE (default %(default)s)"
    )
    _add_data(pretrain)
    _add_training(pretrain, epochs=400, batch_size=64)
    _add_base_lr(pretrain, 1.5e-4)
    pretrain.add_argument("--weight-decay", type=_NON_NEGATIVE, default=0.05, help="default 0.05")
    pretrain.add_argument(
        "--mask-ratio",
        type=_finite_float(0, 1, high_open=True),
        default=0.75,
        help="share of patches removed (default 0.75)",
    )
    pretrain.add_argument("--norm-pix-loss", action="store_true", help="reconstruct per-patch normalised pixels")
    pretrain.add_argument("--clip-grad", type=_POSITIVE, metavar="NORM", help="clip the global gradient norm")
    _add_model_overrides(pretrain)
    _add_procs(pretrain)
    pretrain.set_defaults(run=cmd_pretrain)

    linprobe = _command(
        commands,
        "linprobe",
        "linear probe of a pre-trained MAE encoder",
        "Freeze an MAE encoder and train BatchNorm1d + a linear head on its class token, as "
        "main_linprobe.py. The paper trains the head with LARS at batch 16,384; this uses SGD "
        "with momentum 0.9 (or --optimizer adamw), no weight decay, cosine schedule after warmup. "
        "Writes checkpoint.npz and metrics.jsonl into --out.",
        "scratchvit linprobe --checkpoint runs/mae/checkpoint.npz --data cifar10 "
        "--data-root data/cifar --out runs/linprobe",
    )
    _add_common(linprobe, writes_files=True)
    linprobe.add_argument("--checkpoint", required=True, metavar="PATH", help="an MAE checkpoint from `pretrain`")
    _add_data(linprobe)
    _add_training(linprobe, epochs=90, batch_size=256)
    _add_base_lr(linprobe, 0.1)
    linprobe.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="default sgd (momentum 0.9)")
    linprobe.add_argument("--weight-decay", type=_NON_NEGATIVE, default=0.0, help="default 0, as MoCo v1 and MAE")
    _add_img_size(linprobe, "the MAE's; the position embedding is resampled")
    _add_procs(linprobe)
    linprobe.set_defaults(run=cmd_linprobe)

    finetune = _command(
        commands,
        "finetune",
        "fine-tune a pre-trained MAE encoder end to end",
        "Fine-tune an MAE encoder with a new head on the mean of its patch tokens, as "
        "main_finetune.py: AdamW with layer-wise lr decay, weight decay 0.05, drop path 0.1, label "
        "smoothing 0.1, cosine schedule after warmup (without RandAugment, mixup, cutmix or random "
        "erasing). Writes checkpoint.npz and metrics.jsonl into --out.",
        "scratchvit finetune --checkpoint runs/mae/checkpoint.npz --data cifar10 "
        "--data-root data/cifar --epochs 50 --out runs/finetune",
    )
    _add_common(finetune, writes_files=True)
    finetune.add_argument("--checkpoint", required=True, metavar="PATH", help="an MAE checkpoint from `pretrain`")
    _add_data(finetune)
    _add_training(finetune, epochs=50, batch_size=64)
    _add_base_lr(finetune, 1e-3)
    finetune.add_argument("--weight-decay", type=_NON_NEGATIVE, default=0.05, help="default 0.05")
    finetune.add_argument("--layer-decay", type=_POSITIVE, default=0.75, help="layer-wise lr decay (default 0.75)")
    finetune.add_argument(
        "--drop-path", type=_finite_float(0, 1, high_open=True), default=0.1, help="stochastic depth rate (default 0.1)"
    )
    finetune.add_argument("--label-smoothing", type=_FRACTION, default=0.1, help="default 0.1")
    finetune.add_argument("--min-lr", type=_NON_NEGATIVE, default=1e-6, help="the cosine's end (default 1e-6)")
    finetune.add_argument("--clip-grad", type=_POSITIVE, metavar="NORM", help="clip the global gradient norm")
    _add_img_size(finetune, "the MAE's; the position embedding is resampled")
    _add_procs(finetune)
    finetune.set_defaults(run=cmd_finetune)

    evaluation = _command(
        commands,
        "eval",
        "top-1 / top-5 accuracy of a classifier on a data split",
        "Evaluate a checkpoint of ours (the model is rebuilt from it alone), or a registered "
        "model with --pretrained weights of any format. Prints top-1, top-5 and the loss; "
        "writes eval.json into --out.",
        "scratchvit eval --checkpoint runs/vit/checkpoint.npz --data digits",
    )
    _add_common(evaluation, writes_files=True)
    evaluation.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by scratchvit")
    evaluation.add_argument("--model", dest="model_name", help="a registered model name, with --pretrained")
    evaluation.add_argument(
        "--pretrained", metavar="PATH", help="weights for --model (.pth, .safetensors, .npz, or `hub`: from the hub)"
    )
    _add_data(evaluation)
    evaluation.add_argument("--split", choices=("train", "test"), default="test", help="default test")
    evaluation.add_argument("--batch-size", type=_POSITIVE_INT, default=256, help="default 256")
    _add_model_overrides(evaluation)
    _add_procs(evaluation)
    evaluation.set_defaults(run=cmd_eval)

    summary = _command(
        commands,
        "summary",
        "per-layer output shapes, parameters and multiply-adds of a model",
        "Run a registered model once on zeros and print, for every layer, its output shape, "
        "parameters and multiply-adds (MACs), then the totals.",
        "scratchvit summary vit_base_patch16_224 --img-size 384 --depth 2",
    )
    _add_common(summary)
    summary.add_argument("name", help="a registered model name (see sv.list_models())")
    _add_img_size(summary, "the size the model is made for")
    summary.add_argument(
        "--batch-size", type=_POSITIVE_INT, default=1, help="images in the zero input batch (default 1)"
    )
    summary.add_argument("--depth", type=int, default=None, help="show layers down to this depth (default: all)")
    summary.set_defaults(run=cmd_summary)

    gradcheck = _command(
        commands,
        "gradcheck",
        "check every op's gradient by finite differences",
        "Check every op's backward against float64 central differences.",
        "scratchvit gradcheck --op softmax",
    )
    _add_common(gradcheck)
    gradcheck.add_argument("--op", action="append", help="check only this op (repeatable)")
    gradcheck.add_argument(
        "--kernels",
        choices=kernels.TIERS,
        default="textbook",
        help="check the ops as ops/ writes them (textbook, the default) or their fast kernels",
    )
    gradcheck.set_defaults(run=cmd_gradcheck)

    course = _command(
        commands,
        "course",
        "the course: export a student copy, grade one, check the tasks",
        "export writes a student copy of the project's repository: the tasks of --module N and "
        "of later modules blanked, earlier ones solved, the fast tier left out. grade runs each task's "
        "tests in a copy and writes grades.json and grades.csv. check runs the soundness check.",
        "scratchvit course export --module 3 --out /tmp/m3",
    )
    course.set_defaults(run=cmd_course, device=None, seed=0)
    actions = course.add_subparsers(dest="action", required=True, parser_class=_Parser)
    course_export = actions.add_parser("export", help="write a student copy")
    course_export.add_argument("--module", type=_int_at_least(0), default=None, help="module to blank (default all)")
    course_export.add_argument("--solution", action="store_true", help="blank nothing: the teacher's copy")
    course_export.add_argument("--out", required=True, metavar="DIR", help="a new folder for the copy")
    course_grade = actions.add_parser("grade", help="grade a student copy")
    course_grade.add_argument("dir", metavar="DIR", help="the student copy")
    course_grade.add_argument("--out", default=None, metavar="DIR", help="for grades.json and grades.csv (default DIR)")
    course_grade.add_argument("--task", action="append", metavar="ID", help="only this task (repeatable), e.g. 3.2")
    course_check = actions.add_parser("check", help="the soundness check of every task")
    course_check.add_argument("--workers", type=_int_at_least(1), default=2, help="tasks checked at once (default 2)")
    course_check.add_argument("--keep", default=None, metavar="DIR", help="keep the copies and their runs in DIR")

    convert = _command(
        commands,
        "convert",
        "convert weights to a timm-keyed safetensors file",
        "Read a weights file of any format scratchvit reads (torch .pth, safetensors, big_vision "
        ".npz, our checkpoints) into a registered model and write its state_dict, timm's keys, as "
        "safetensors (needs the safetensors package).",
        "scratchvit convert swin_tiny_patch4_window7_224.pth swin_t.safetensors --model swin_tiny_patch4_window7_224",
    )
    _add_common(convert)
    convert.add_argument("src", help="the weights file to read")
    convert.add_argument("dst", help="the .safetensors file to write")
    convert.add_argument("--model", dest="model_name", required=True, help="the registered model the weights belong to")
    _add_model_overrides(convert)
    convert.set_defaults(run=cmd_convert)

    predict = _command(
        commands,
        "predict",
        "top-k ImageNet classes of photos with pretrained weights, and where the model looks",
        "Classify photos (JPEG, PNG, ...) with a pretrained ViT or Swin: each is resized, centre-cropped and "
        "normalised as the weights' timm configuration says, and its top-k classes printed with their "
        "probabilities. --pretrained hub (the default) downloads the model's weights from the Hugging Face hub "
        "once (HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE as huggingface_hub); a tag picks other weights, e.g. "
        "--model vit_base_patch16_224.augreg_in1k. --attention draws a ViT's attention rollout, or a Swin's "
        "last-stage window attention, over each crop.",
        "scratchvit predict cat.jpg --model vit_base_patch16_224 --top 5 --attention cat_attention.png",
    )
    _add_common(predict)
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--model", dest="model_name", required=True, help="a ViT or Swin name, optionally .tag")
    predict.add_argument("--pretrained", metavar="hub|PATH", help="`hub` (default) or a weights file")
    predict.add_argument("--top", type=_POSITIVE_INT, default=5, help="classes to print per image (default 5)")
    predict.add_argument("--attention", metavar="PNG", help="write where the model looks to this PNG")
    _add_model_overrides(predict)
    predict.set_defaults(run=cmd_predict)

    mae_visualize = _command(
        commands,
        "mae-visualize",
        "MAE reconstruction of a photo: original, masked, reconstruction, reconstruction + visible",
        "Mask a share of a photo's patches at random and let a pretrained MAE reconstruct them, as the "
        "official MAE visualisation notebook (He et al. 2022, Fig. 2): four panels in one PNG. --pretrained "
        "hub (the default) downloads the official checkpoint with the pixel decoder (mae_visualize_vit_*.pth) "
        "once; the .visualize_ganloss tag of ViT-L gives sharper pictures.",
        "scratchvit mae-visualize cat.jpg --model mae_vit_large_patch16 --mask-ratio 0.75 --seed 2",
    )
    _add_common(mae_visualize)
    mae_visualize.add_argument("image", metavar="IMAGE", help="an image file")
    mae_visualize.add_argument("--model", dest="model_name", default="mae_vit_large_patch16", help="%(default)s")
    mae_visualize.add_argument("--pretrained", metavar="hub|PATH", help="`hub` (default) or a weights file")
    mae_visualize.add_argument("--mask-ratio", type=_FRACTION, default=0.75, help="share removed (default 0.75)")
    mae_visualize.add_argument("--output", metavar="PNG", help="the PNG to write (default <image stem>_mae.png)")
    _add_model_overrides(mae_visualize)
    mae_visualize.set_defaults(run=cmd_mae_visualize)

    bench = _command(
        commands,
        "bench",
        "time a training step; --profile shows where the time goes",
        "Median time of a training step (forward, backward, AdamW update) on a named workload, "
        "random images and labels. With --profile, one more step timed op by op: milliseconds per "
        "op family and per op, forward and backward. Writes bench.json into --out.",
        "scratchvit bench vit_digits_b64 --steps 5 --profile",
    )
    _add_common(bench, writes_files=True)
    bench.add_argument("workload", choices=list(WORKLOADS), help="model, patch, image size, batch: %(choices)s")
    bench.add_argument("--steps", type=_POSITIVE_INT, default=7, help="timed steps; the median is reported (default 7)")
    bench.add_argument("--warmup", type=_NON_NEGATIVE_INT, default=2, help="untimed steps first (default 2)")
    bench.add_argument("--profile", action="store_true", help="time one step op by op")
    bench.set_defaults(run=cmd_bench)

    info = _command(
        commands, "info", "versions, BLAS and devices", "Versions, the BLAS NumPy uses, the devices.", "scratchvit info"
    )
    _add_common(info)
    info.set_defaults(run=cmd_info)
    return parser


_USER_ERRORS = (ValueError, TypeError, RuntimeError, OSError, ImportError)  # bad input, files, missing packages


def main(argv=None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a wrong argument, already reported on one line (2)
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        procs = getattr(args, "procs", None)  # train, pretrain, linprobe, finetune, eval
        if procs is not None and distributed.init() > 1:
            raise ValueError("argument --procs: already a rank of an MPI job; give --procs N or mpirun -n N, not both")
        if procs is not None and procs > 1:
            return launch.launch_local(procs, sys.argv[1:] if argv is None else argv)
        if args.device is not None:
            backend.set_default_device(args.device)
        backend.manual_seed(args.seed)
        return args.run(args)
    except NonFiniteLossError as error:  # the run diverged: not bad input, so exit code 1
        if distributed.world_size() > 1:
            distributed.abort(f"scratchvit {args.command}: {error}", exit_code=1)
        print(f"scratchvit {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line, where it stopped (fit says), exit 128 + SIGINT
        if distributed.is_main():
            print(f"scratchvit {args.command}: {interrupt or 'interrupted'}", file=sys.stderr)
        return 130
    except _USER_ERRORS as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        if distributed.world_size() > 1:  # the other ranks may wait for this one in a collective: end them all
            distributed.abort(f"scratchvit {args.command}: error: {message}", exit_code=2)
        print(f"scratchvit {args.command}: error: {message}", file=sys.stderr)
        return 2


def run() -> None:
    """The `scratchvit` console command: on the fast tier its process-wide settings first
    (kernels.tune_process: malloc, scratchvit's threads; the textbook tier leaves the process as
    it is, OpenBLAS on its own threads), then main()."""
    if kernels.current_tier() == "fast":
        kernels.tune_process()
    sys.exit(main())


if __name__ == "__main__":
    run()
