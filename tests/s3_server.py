"""A real S3-compatible server on 127.0.0.1 (moto's standalone server), for bucket tests.

moto answers the S3 REST API over HTTP as a bucket would; the readers reach it through
s3fs exactly as they would reach AWS or MinIO. Every request it serves is logged by its
HTTP server (werkzeug); :class:`RequestLog` counts them, so tests can say how many
requests a read costs.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer


class RequestLog(logging.Handler):
    """The requests the server answered, as ``"GET /bucket/key"`` lines, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # werkzeug logs '<ip> - - [date] "GET /path HTTP/1.1" 200 -': keep method and path
        text = record.getMessage()
        if '"' in text:
            request = text.split('"')[1]
            self.lines.append(request.rsplit(" ", 1)[0])


@dataclass
class S3Server:
    """A running server: its endpoint and the storage options that reach it."""

    endpoint: str
    log: RequestLog
    options: dict[str, Any] = field(default_factory=dict)

    def cli_options(self) -> list[str]:
        """The same options as repeated ``--storage-option key=value`` arguments."""
        pairs = []
        for key, value in self.options.items():
            shown = value if isinstance(value, str) else json.dumps(value)
            pairs += ["--storage-option", f"{key}={shown}"]
        return pairs

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.options, skip_instance_cache=True)

    def upload(self, local: Path, url: str) -> None:
        """Copy the folder ``local`` to ``url`` (``s3://bucket/prefix``), as a lab syncs a store."""
        fs = self.filesystem()
        bucket = url.removeprefix("s3://").split("/")[0]
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.put(f"{local}/", url.removeprefix("s3://"), recursive=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's server on a free port of 127.0.0.1; stop it on exit."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    log = RequestLog()
    werkzeug = logging.getLogger("werkzeug")
    level, propagate = werkzeug.level, werkzeug.propagate
    werkzeug.addHandler(log)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False  # counted here, not printed
    endpoint = f"http://127.0.0.1:{port}"
    options = {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
    }
    try:
        yield S3Server(endpoint, log, options)
    finally:
        werkzeug.removeHandler(log)
        werkzeug.setLevel(level)
        werkzeug.propagate = propagate
        server.stop()
