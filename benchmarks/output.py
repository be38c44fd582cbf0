"""Where every benchmark's JSON result goes: a file under ``benchmarks/results/`` and stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas import atomic_write


def save_result(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` as indented JSON to ``path`` (folders made as needed) and print it."""
    text = json.dumps(result, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as tmp:  # a killed run leaves the old result whole
        tmp.write_text(text + "\n")
    print(text)


def render_main(
    doc: str, default: Path, render: Callable[[dict[str, Any]], str], argv: list[str] | None
) -> int:
    """The command line of a renderer: ``[RESULT] [--out FILE]``, a result JSON (``default``
    when none is given) rendered as text to FILE or stdout; ``doc`` gives its description."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("result", nargs="?", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=None, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    text = render(json.loads(args.result.read_text()))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0
