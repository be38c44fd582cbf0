"""A real S3-compatible server on 127.0.0.1 for the benchmarks that read a store by URL.

:func:`local_s3` starts moto's standalone server on a free port, makes one bucket, points
:mod:`schemas.remote` at it (:func:`schemas.remote.use_storage_options`) and counts the
requests the server answers (from its request log), so a benchmark can report requests
per window. The server shares the CPU with the reader: its rates bound a local round
trip, not a bucket's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LocalS3:
    fs: Any  # an s3fs.S3FileSystem on the server
    options: dict[str, str]  # the fsspec storage options that reach it
    requests: list[str] = field(default_factory=list)  # one line per request answered


@contextlib.contextmanager
def local_s3(bucket: str = "bench") -> Iterator[LocalS3]:
    """A running server with ``bucket`` made; stopped on the way out."""
    import s3fs
    from moto.server import ThreadedMotoServer

    from schemas.remote import use_storage_options

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    requests: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: requests.append(record.getMessage())  # type: ignore[method-assign]
    werkzeug = logging.getLogger("werkzeug")  # the server's request log
    werkzeug.addHandler(handler)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "x", "secret": "x"}
        use_storage_options(options)
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir(bucket)
        yield LocalS3(fs, options, requests)
    finally:
        werkzeug.removeHandler(handler)
        server.stop()
