"""Derivations: the last paragraph of an op's docstring, the one that starts with `Backward`,

    class Cube(Function):
        \"\"\"y = x^3, elementwise.

        Backward: dy/dx = 3 x^2 => dx = 3 g x^2.
        \"\"\"

derives the gradient that the op's backward region computes. In a student copy whose region of
Cube.backward is blanked that paragraph would give the answer away, so `hide_derivations` puts
one line in its place, `Backward: Task 1.3, yours to derive and write (notes/...)`. The rule
holds for every class with a region in a method named `backward` or `*_backward`;
`check_derivations` finds the classes that break it.
"""

from __future__ import annotations

import ast
from pathlib import Path


class DerivationError(ValueError):
    """A class with a backward region whose docstring has no last paragraph starting with Backward."""


def derivation_classes(regions: list) -> dict:
    """{(path, class name): task id} of the classes holding a region in a backward method."""
    return {
        (region.path, region.name.split(".")[0]): region.task
        for region in regions
        if "." in region.name and region.name.rsplit(".", 1)[1].endswith("backward")
    }


def find_derivation(text: str, class_name: str) -> tuple:
    """(first, last): the 1-based lines of the Backward paragraph of `class_name`'s docstring in
    `text`, the closing quotes excluded; DerivationError when the docstring breaks the rule."""
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            break
    else:
        raise DerivationError(f"class {class_name} not found")
    if ast.get_docstring(node) is None:
        raise DerivationError(f"class {class_name} has no docstring")
    first = node.body[0]
    docstring = range(first.lineno, first.end_lineno + 1)
    starts = [number for number in docstring[1:] if lines[number - 1].strip().startswith("Backward")]
    if len(starts) != 1:
        raise DerivationError(f"{class_name}'s docstring has {len(starts)} lines starting with Backward, not one")
    if lines[starts[0] - 2].strip():
        raise DerivationError(f"{class_name}'s Backward paragraph does not follow a blank line")
    if lines[first.end_lineno - 1].strip() not in ('"""', "'''"):
        raise DerivationError(f"{class_name}'s docstring does not close on a line of its own")
    return starts[0], first.end_lineno - 1


def hide_derivations(text: str, classes: dict, message_of) -> str:
    """`text` with the Backward paragraph of each class in `classes` ({name: task id}) replaced by
    one line, message_of(task id)."""
    lines = text.splitlines(keepends=True)
    spans = sorted(((find_derivation(text, name), task) for name, task in classes.items()), reverse=True)
    for (first, last), task in spans:
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        lines[first - 1 : last] = [f"{indent}{message_of(task)}\n"]
    return "".join(lines)


def check_derivations(root: Path, regions: list) -> list:
    """Problems (one line each) with the classes that break the rule."""
    problems = []
    for (path, name), task in sorted(derivation_classes(regions).items()):
        try:
            find_derivation((root / path).read_text(encoding="utf-8"), name)
        except DerivationError as error:
            problems.append(f"{path}: task {task}: {error}")
    return problems


def derivation_texts(root: Path, regions: list) -> list:
    """The Backward paragraphs of the source, each with its whitespace collapsed."""
    texts = []
    for path, name in sorted(derivation_classes(regions)):
        text = (root / path).read_text(encoding="utf-8")
        first, last = find_derivation(text, name)
        texts.append(" ".join(" ".join(text.splitlines()[first - 1 : last]).split()))
    return texts
