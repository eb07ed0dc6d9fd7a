"""The `scratchvit` command. Each sub-command is one function; `scratchvit CMD --help` shows an example."""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from . import backend


class _Parser(argparse.ArgumentParser):
    """argparse that reports a wrong argument as one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"scratchvit: error: {message}\n")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: $SCRATCHVIT_DEVICE or cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random generator (default 0)")


def cmd_gradcheck(args) -> int:
    """Finite-difference check of every op; a table, and exit code 1 on any failure."""
    from .op_table import run_gradchecks

    rows = run_gradchecks(device=args.device, seed=args.seed, only=args.op)
    name_width = max(len("op"), *(len(row.op) for row in rows))
    shape_width = max(len("input shapes"), *(len(row.shapes) for row in rows))
    print(f"{'op':<{name_width}}  {'input shapes':<{shape_width}}  {'max rel error':>13}  result")
    for row in rows:
        result = "pass" if row.passed else f"FAIL {row.message}"
        print(f"{row.op:<{name_width}}  {row.shapes:<{shape_width}}  {row.max_relative_error:>13.2e}  {result}")
    failures = sum(not row.passed for row in rows)
    print(f"{len(rows) - failures} passed, {failures} failed")
    return 1 if failures else 0


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
    return 0


def cmd_summary(args) -> int:
    """A per-layer table of a registered model: output shapes, parameters, multiply-adds."""
    from .models import create_model
    from .models.summary import input_shape_for, summarize

    img_size = None if args.img_size is None else tuple(args.img_size)
    if img_size is not None and len(img_size) > 2:
        raise ValueError(f"--img-size takes H or H W, got {len(img_size)} numbers: {' '.join(map(str, img_size))}")
    if img_size is not None and len(img_size) == 1:
        img_size = img_size * 2
    model = create_model(args.name, **({} if img_size is None else {"img_size": img_size}))
    summary = summarize(model, input_shape_for(model, args.batch_size, img_size))
    print(f"{args.name}")
    print(summary.table(max_depth=args.depth))
    return 0


def _version() -> str:
    from . import __version__

    return __version__


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchvit", description="Vision Transformers from scratch on NumPy or CuPy.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gradcheck = commands.add_parser(
        "gradcheck",
        help="check every op's gradient by finite differences",
        description="Check every op's backward against float64 central differences.",
        epilog="example: scratchvit gradcheck --op softmax",
    )
    _add_common(gradcheck)
    gradcheck.add_argument("--op", action="append", help="check only this op (repeatable)")
    gradcheck.set_defaults(run=cmd_gradcheck)

    info = commands.add_parser("info", help="versions, BLAS and devices", epilog="example: scratchvit info")
    _add_common(info)
    info.set_defaults(run=cmd_info)

    summary = commands.add_parser(
        "summary",
        help="per-layer output shapes, parameters and multiply-adds of a model",
        description="Run a registered model once on zeros and print, for every layer, its output shape, "
        "parameters and multiply-adds (MACs), then the totals.",
        epilog="example: scratchvit summary vit_base_patch16_224 --img-size 384 --depth 2",
    )
    _add_common(summary)
    summary.add_argument("name", help="a registered model name (see sv.list_models())")
    summary.add_argument("--img-size", type=int, nargs="+", metavar=("H", "W"),
                         help="image size: H, or H W (default: the size the model is made for)")  # fmt: skip
    summary.add_argument("--batch-size", type=int, default=1, help="images in the zero input batch (default 1)")
    summary.add_argument("--depth", type=int, default=None, help="show layers down to this depth (default: all)")
    summary.set_defaults(run=cmd_summary)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.device is not None:
            backend.set_default_device(args.device)
        backend.manual_seed(args.seed)
        return args.run(args)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as error:
        print(f"scratchvit {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
