"""A training run's folder: what fit and the recipes keep there, and the rules that make a run lose
nothing and harm no other run.

- `guard_run_dir`: a new run refuses a folder that holds another run's checkpoint or metrics,
  unless it resumes that run or is told to overwrite it.
- `config_differences`: the checkpoint records the run's configuration; a resume that changes it,
  or asks for fewer epochs than were trained, is refused, naming each difference.
- `save_verified_checkpoint`: the previous checkpoint is kept beside the new one
  (checkpoint.npz -> checkpoint-prev.npz) until the new one is written, read back and found whole
  and finite.
- `non_finite_arrays`: which weights and optimizer arrays hold NaN or inf; nothing non-finite is
  ever saved.
- `remove_stale_partials`, `truncate_metrics`: what a killed run leaves behind (temporary
  `.partial` files of an unfinished save, metrics lines of epochs the checkpoint does not hold)
  is cleared when the run starts again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .. import backend
from ..io.checkpoint import read_checkpoint, save_checkpoint
from ..io.errors import CheckpointError
from ..io.files import write_atomically
from .metrics import json_compatible

CHECKPOINT_NAME = "checkpoint.npz"  # NumPy's own container: no optional package needed to write it
METRICS_NAME = "metrics.jsonl"
SHOWN_NAMES = 3  # non-finite arrays named in a message; the rest are counted


class RunDirError(ValueError):
    """The output folder holds another run, or a resume does not fit the run it resumes."""


def previous_checkpoint_path(path) -> Path:
    """Where save_verified_checkpoint keeps the checkpoint it replaces: checkpoint.npz ->
    checkpoint-prev.npz."""
    path = Path(path)
    return path.with_name(f"{path.stem}-prev{path.suffix}")


def run_files(folder) -> list:
    """The run files present in `folder`: checkpoint, previous checkpoint, metrics."""
    folder = Path(folder)
    names = (CHECKPOINT_NAME, previous_checkpoint_path(CHECKPOINT_NAME).name, METRICS_NAME)
    return [folder / name for name in names if (folder / name).exists()]


def _describe(path: Path) -> str:
    """A file of a run in a few words: the metrics file with the epochs it logged."""
    if path.name != METRICS_NAME:
        return path.name
    epochs = [record.get("epoch") for record in _metrics_records(path) if record.get("kind") == "epoch"]
    return f"{path.name} (epochs {epochs[0]}..{epochs[-1]})" if epochs else path.name


def guard_run_dir(out_dir, *, resume=None, overwrite: bool = False, resumable: bool = True) -> None:
    """Refuse `out_dir` when it holds another run (its checkpoint or metrics), naming what is there.

    A resume from a checkpoint in `out_dir` goes on with that run; overwrite=True deletes the other
    run's files. Raises RunDirError otherwise, suggesting --resume when the command takes one
    (`resumable`). Nothing is written unless overwrite deletes.
    """
    out = Path(out_dir)
    present = run_files(out)
    if not present:
        return
    if resume is not None and Path(resume).resolve().parent == out.resolve():
        return
    if overwrite:
        for path in present:
            path.unlink()
        return
    resume_hint = f"--resume {out / CHECKPOINT_NAME} to go on with it, " if resumable else ""
    raise RunDirError(
        f"--out {out} already holds another run ({', '.join(_describe(path) for path in present)}): give "
        f"{resume_hint}--overwrite to replace it, or another --out"
    )


def recorded_config(config: dict) -> dict:
    """`config` as a checkpoint stores it (JSON: tuples become lists, paths strings)."""
    return json.loads(json.dumps(json_compatible(config), default=str))


def config_differences(saved: dict | None, current: dict | None) -> list:
    """The differences between a checkpoint's recorded configuration and this run's, as
    "key saved -> current" strings (empty when either is unknown)."""
    if not saved or current is None:
        return []
    current = recorded_config(current)
    unset = "(unset)"
    return [
        f"{key} {saved.get(key, unset)!r} -> {current.get(key, unset)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, unset) != current.get(key, unset)
    ]


def check_resume(checkpoint, epochs: int, config: dict | None, allow_config_change: bool = False) -> None:
    """RunDirError when a run of `epochs` epochs and `config` cannot go on from `checkpoint` (a
    Checkpoint written by fit): `epochs` below the epochs it trained, or a configuration other
    than the one it recorded (each difference named) unless allow_config_change."""
    trained = checkpoint.epoch + 1
    if epochs < trained:
        raise RunDirError(
            f"--epochs {epochs} is below the {trained} epochs {checkpoint.path} has trained already: "
            f"give --epochs {trained} (it is finished) or more"
        )
    differences = config_differences(checkpoint.extra.get("config"), config)
    if differences and not allow_config_change:
        raise RunDirError(
            f"{checkpoint.path}: this resume changes the run's configuration ({'; '.join(differences)}): "
            "give the same values, or --allow-config-change to go on with the new ones"
        )


def _float_arrays(value, name: str):
    """(dotted name, array) for every float array nested in dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _float_arrays(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _float_arrays(item, f"{name}.{index}")
    elif hasattr(value, "dtype") and getattr(value, "ndim", None) is not None and value.dtype.kind == "f":
        yield name, value


def _non_finite_names(named_arrays) -> list:
    """The names of the arrays holding NaN or inf; one device-to-host transfer per array module."""
    by_module: dict = {}
    for name, array in named_arrays:
        xp = backend.xp_of(array)
        by_module.setdefault(xp, ([], []))
        by_module[xp][0].append(name)
        by_module[xp][1].append(xp.isfinite(array).all())
    bad = []
    for xp, (names, flags) in by_module.items():
        finite = backend.to_numpy(xp.stack(flags))
        bad.extend(name for name, ok in zip(names, finite, strict=True) if not ok)
    return bad


def non_finite_arrays(model, optimizer=None) -> list:
    """The names ("model.<key>", "optimizer.state.<i>.<key>") of the model's weights and the
    optimizer's state arrays that hold NaN or inf."""
    state = {"model": dict(model.state_dict())}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()["state"]
    return _non_finite_names(
        (name, array) for part, value in state.items() for name, array in _float_arrays(value, part)
    )


def name_some(names: list) -> str:
    """The first few names, and how many more."""
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` hold what `source` holds, atomically (a hard link where the file system
    allows one, a copy otherwise); `source` stays."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def verify_checkpoint(path, epoch: int | None = None) -> None:
    """Read the checkpoint at `path` back and check it is whole (readable, of `epoch`) and that no
    float array in it holds NaN or inf; CheckpointError naming the file otherwise."""
    checkpoint = read_checkpoint(path)
    if epoch is not None and checkpoint.epoch != epoch:
        raise CheckpointError(f"{path}: reads back as epoch {checkpoint.epoch}, written as epoch {epoch}")
    arrays = [*_float_arrays(checkpoint.state_dict, "model"), *_float_arrays(checkpoint.optimizer, "optimizer")]
    bad = _non_finite_names(arrays)
    if bad:
        raise CheckpointError(f"{path}: holds NaN or inf in {len(bad)} arrays ({name_some(bad)})")


def save_verified_checkpoint(path, model, optimizer=None, schedule=None, **save_options) -> Path:
    """save_checkpoint(path, ...), keeping the checkpoint it replaces as previous_checkpoint_path
    until the new one is written and verify_checkpoint finds it whole and finite. On a failed
    verification the previous checkpoint is put back at `path`, and CheckpointError raised.

    At every moment `path` holds a complete checkpoint (the old or the new one) once it has held
    one: the old file is hard-linked to its -prev name first (copied where links are not allowed),
    then save_checkpoint renames the new one over `path`, which leaves the linked old file as it was.
    """
    path = Path(path)
    if path.suffix == "":  # as save_checkpoint names it
        path = path.with_name(path.name + ".safetensors")
    previous = previous_checkpoint_path(path)
    had_previous = path.is_file()
    if had_previous:
        _link_or_copy(path, previous)
    saved = save_checkpoint(path, model, optimizer, schedule, **save_options)
    try:
        verify_checkpoint(saved, save_options.get("epoch"))
    except CheckpointError as error:
        if had_previous:
            _link_or_copy(previous, saved)
        kept = "the previous one is back in place" if had_previous else "no earlier checkpoint exists"
        raise CheckpointError(f"{error}; {kept}") from error
    return saved


def remove_stale_partials(path) -> list:
    """Delete the temporary files an interrupted save of the checkpoint `path` (or of its previous
    copy) left beside it; returns their paths."""
    path = Path(path)
    stale = [
        partial
        for name in (path.name, previous_checkpoint_path(path).name)
        for partial in path.parent.glob(f".{name}.*.partial")
    ]
    for partial in stale:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return stale


def _metrics_records(path: Path) -> list:
    """The JSON objects of a JSON Lines file; a damaged line (a write cut short) is skipped."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records


def truncate_metrics(path, last_epoch: int) -> int:
    """Cut the metrics file back to the records of epochs up to `last_epoch` (those a resumed
    checkpoint holds), dropping damaged lines; rewritten atomically. Returns the records dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8", errors="replace") as file:
        lines = [line for line in file if line.strip()]
    records = _metrics_records(path)
    kept = [record for record in records if not isinstance(record.get("epoch"), int) or record["epoch"] <= last_epoch]
    if len(kept) == len(lines):
        return 0
    text = "".join(json.dumps(json_compatible(record), allow_nan=False) + "\n" for record in kept)
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))
    return len(lines) - len(kept)
