"""The course's notebooks: built with jupytext from the lecture notes (notes/*.md) and the demos
(demos/*.py), each with a Python 3 kernelspec, and executed with nbclient.

    python -m scratchvit.course.notebooks build        # writes scratchvit/course/notebooks/*.ipynb
    python -m scratchvit.course.notebooks run [DIR]    # executes each (SCRATCHVIT_QUICK=1), figures as PNGs in DIR,
                                                       # and fails where a shipped notebook is older than its source

Needs the `course` extra (jupytext, nbclient, ipykernel).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTES, NOTEBOOKS = HERE / "notes", HERE / "notebooks"
DEMOS = HERE.parents[1] / "demos"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources() -> list:
    """The notes, then the demos (where the repository's demos/ is beside the package)."""
    demos = sorted(DEMOS.glob("*.py")) if DEMOS.is_dir() else []
    return sorted(NOTES.glob("*.md")) + demos


def build(out: Path = NOTEBOOKS) -> list:
    """Write one .ipynb per source into `out`; returns their paths."""
    import jupytext

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources():
        notebook = jupytext.read(source)
        notebook.metadata["kernelspec"] = dict(KERNELSPEC)
        notebook.metadata.pop("jupytext", None)
        for number, cell in enumerate(notebook.cells):  # ids fixed, so a rebuild of the same source is the same file
            cell["id"] = f"{source.stem}-{number}"[-64:]
        target = out / (source.stem + ".ipynb")
        handle, temporary = tempfile.mkstemp(dir=out, suffix=".partial.ipynb")
        with os.fdopen(handle, "w", encoding="utf-8") as written_file:
            written_file.write(jupytext.writes(notebook, fmt="ipynb"))
        os.replace(temporary, target)
        written.append(target)
    return written


def run(notebooks: list, figures: Path, timeout: int = 600) -> list:
    """Execute each notebook in quick mode with its folder as the working directory, figures saved under
    `figures`; returns (name, None or the error's last line) per notebook."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    os.environ["SCRATCHVIT_QUICK"] = "1"
    results = []
    with tempfile.TemporaryDirectory(prefix="scratchvit-kernel-") as sockets:
        config = Config()  # the kernel talks over local sockets, not unencrypted TCP
        config.KernelManager.transport, config.KernelManager.ip = "ipc", os.path.join(sockets, "kernel")
        for path in notebooks:
            os.environ["SCRATCHVIT_OUT"] = str(figures / path.stem)
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(
                notebook,
                config=config,
                timeout=timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(figures)}},
            )
            try:
                client.execute()
                results.append((path.name, None))
            except Exception as error:  # a cell that raised: report it, run the others
                results.append((path.name, str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)))
    return results


def main(argv: list) -> int:
    if not argv or argv[0] not in ("build", "run"):
        print("usage: python -m scratchvit.course.notebooks build | run [FIGURES_DIR]", file=sys.stderr)
        return 2
    if argv[0] == "build":
        for path in build():
            print(path)
        return 0
    figures = Path(argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="scratchvit-notebooks-"))
    figures.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as fresh:
        built = build(Path(fresh))
        stale = stale_notebooks(built)
        results = run(built, figures)
    for name, error in results:
        print(f"{name}: {'ok' if error is None else 'FAILED ' + error}")
    for name in stale:
        print(f"{name}: FAILED scratchvit/course/notebooks/{name} differs from its source; rebuild it (build)")
    print(f"figures in {figures}")
    return 1 if stale or any(error for _, error in results) else 0


def stale_notebooks(built: list) -> list:
    """Names of the shipped notebooks (scratchvit/course/notebooks) missing or unlike a fresh build."""
    shipped = {path.name for path in NOTEBOOKS.glob("*.ipynb")}
    stale = sorted(shipped - {path.name for path in built})
    for path in built:
        copy = NOTEBOOKS / path.name
        if not copy.is_file() or copy.read_text(encoding="utf-8") != path.read_text(encoding="utf-8"):
            stale.append(path.name)
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
