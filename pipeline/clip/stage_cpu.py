"""CPU seconds per stage of one clip's processing, child processes included.

Wall time says little on a busy machine, and a clip's ffmpeg processes run beside the
worker; CPU seconds say what a clip costs. :class:`StageCpu` adds, per stage, the CPU
time of this process (all its threads: the pipe readers of a decode included) and of
the child processes that ended during the stage (``RUSAGE_CHILDREN``: ffmpeg and
ffprobe, which are always waited for), under ``<stage>`` and ``<stage>_children``;
``processes`` counts the child processes started.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class StageCpu:
    """CPU seconds per stage name (see the module docstring)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + value

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block: its own CPU under ``name``, its children's under ``name_children``."""
        own, kids = time.process_time(), children_cpu_s()
        try:
            yield
        finally:
            self.add(name, time.process_time() - own)
            spent = children_cpu_s() - kids
            if spent:
                self.add(f"{name}_children", spent)
