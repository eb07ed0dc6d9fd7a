"""The layer order of DESIGN.md, read from the source: every module's imports (those inside functions
too, found with `ast`) reach only its own layer and the layers above it, and no imports go round in a
cycle. One exception, by design: `autograd` and `ops`, whose Tensor operators call the primitive ops
(elementwise, reduce, shape, ...) that are built on Tensor and Function.

scratchvit/__init__.py (the public API) and scratchvit/__main__.py (the entry point) import from
every layer and are left out. A layer whose package does not exist (yet) is simply absent.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scratchvit"
LAYERS = "backend autograd tensors ops kernels nn io models data train check course app".split()
ALLOWED_UPWARD = {("autograd", "ops")}  # autograd imports the primitive ops at its bottom
EXEMPT = {"scratchvit", "scratchvit.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    return module.split(".")[1]


def imported_modules(module: str) -> set:
    """The scratchvit modules `module` imports anywhere in its file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(), package) - {module}


def imports_in(source: str, package: str) -> set:
    """The scratchvit modules that `source`, a module of `package`, imports, at its top or inside
    functions; `from package import name` counts as importing the submodule when `name` is one, else
    the package."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "scratchvit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "scratchvit":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in MODULES else source)
    return found


IMPORTS = {module: imported_modules(module) for module in MODULES if module not in EXEMPT}
# `import scratchvit` (the public API) brings in the lowest layer it imports: only that layer or one
# below it may use it
API_LAYER = max(LAYERS.index(layer_of(target)) for target in imported_modules("scratchvit"))


def test_every_layer_imports_only_itself_and_the_layers_above():
    wrong = []
    for module, targets in IMPORTS.items():
        layer = layer_of(module)
        for target in sorted(targets):
            if target == "scratchvit":
                if LAYERS.index(layer) < API_LAYER:
                    wrong.append(f"{module} ({layer}) imports the public API, which imports {LAYERS[API_LAYER]}")
                continue
            other = layer_of(target)
            if other not in LAYERS or layer not in LAYERS:
                wrong.append(f"{module} -> {target}: a layer that DESIGN.md does not name")
            elif LAYERS.index(other) > LAYERS.index(layer) and (layer, other) not in ALLOWED_UPWARD:
                wrong.append(f"{module} ({layer}) imports {target} ({other}), a layer below it")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph, autograd -> ops edges left out."""
    graph = {
        module: {t for t in targets if t in IMPORTS and (layer_of(module), layer_of(t)) not in ALLOWED_UPWARD}
        for module, targets in IMPORTS.items()
    }
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(start: str) -> None:  # iterative, so a deep import chain cannot exhaust the stack
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_reader_sees_every_kind_of_import():
    """The parser above resolves relative, absolute and in-function imports (a check on the check)."""
    source = """
import numpy as np
import scratchvit.backend
from . import checkpoint
from .. import nn, tensors
from ..models.registry import list_models


def load():
    from ..models import pos_embed
    from scratchvit.autograd import Tensor
"""
    assert imports_in(source, "scratchvit.io") == {
        "scratchvit.backend",
        "scratchvit.io.checkpoint",
        "scratchvit.nn",
        "scratchvit.tensors",
        "scratchvit.models.registry",
        "scratchvit.models.pos_embed",
        "scratchvit.autograd",
    }
    assert all(layer_of(module) in LAYERS for module in IMPORTS)
