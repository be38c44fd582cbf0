"""Where every benchmark's JSON result goes: a file under ``benchmarks/results/`` and stdout."""

from __future__ import annotations

import json
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
