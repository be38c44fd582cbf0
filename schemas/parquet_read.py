"""Reading a whole Parquet file on the calling thread, with nothing left running after.

``pq.read_table`` reads through Arrow's dataset scanner: read-ahead futures and
pre-buffered ranges that may be released on Arrow's I/O and CPU threads *after* the
call has returned. When the file is a Python file object (every store table is opened
through the link-safe opener, :mod:`schemas.safe_files`), those buffers wrap Python
objects and their release needs the GIL. A process that exits right after a read (a
command that reads the manifest, then stops on a user error) can reach interpreter
shutdown while an Arrow thread still holds one: the thread asks for the GIL, CPython
ends it with ``pthread_exit``, the unwinding meets a ``noexcept`` C++ destructor and
libstdc++ calls ``std::terminate`` ("terminate called without an active exception",
SIGABRT, exit -6 instead of 2). Reading with ``pre_buffer=False`` and
``use_threads=False`` does every read and every release on the calling thread before
returning, so no Arrow thread touches Python afterwards.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(source: Any) -> pa.Table:
    """The whole table in ``source`` (a path or an open binary file), read synchronously.

    Raises what ``pyarrow.parquet`` raises for a damaged file (``OSError``,
    ``pyarrow.ArrowInvalid``); callers turn those into their own one-line errors.
    """
    with pq.ParquetFile(source, pre_buffer=False) as parquet:
        return parquet.read(use_threads=False)
