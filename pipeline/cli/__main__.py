"""``python -m pipeline.cli``: the same program as ``mscct-pipeline``."""

from pipeline.cli import main

main()
