#!/usr/bin/env python
"""Write scratchvit/data/imagenet1k_classes.txt, the 1,000 ImageNet-1k classes in the order of the
classifiers' outputs, from the lists timm ships (timm/data/_info): one line per class index,
`<WordNet synset id><TAB><its lemmas, comma-separated>`, e.g. `n01440764\ttench, Tinca tinca`.

DEV-ONLY (needs timm). Run with the torch + timm environment:

    /work/torchenv/bin/python tools/make_imagenet_classes.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "scratchvit" / "data" / "imagenet1k_classes.txt"


def class_lines(info: Path) -> list:
    """'<synset>\\t<lemmas>' for the 1,000 synsets of imagenet_synsets.txt, in its order."""
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    if len(synsets) != 1000 or len(set(synsets)) != 1000:
        raise ValueError(f"expected 1000 distinct synsets, got {len(synsets)} ({len(set(synsets))} distinct)")
    return [f"{synset}\t{lemmas[synset].strip()}" for synset in synsets]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the text file to write")
    args = parser.parse_args(argv)
    import timm.data

    lines = class_lines(Path(timm.data.__file__).parent / "_info")
    temporary = args.out.with_name(f".{args.out.name}.partial")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, args.out)  # atomic: never a half-written list
    print(f"wrote {args.out} ({len(lines)} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
