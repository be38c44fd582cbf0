"""How the project's command-line programs end on an error: one line, a fixed exit status.

``mscct-pipeline`` and ``mscct-train`` report an error the user can fix (a missing or
foreign store, a bad table, a bad argument) as one line ``error: <message>`` on
stderr and exit with status 2, never with a traceback. Such an error is a
:class:`UserError`, whatever the module that raises it: every user-facing error class
of the project derives from it. Anything else keeps its traceback and exits 1, so a
bug (a ``ValueError`` from numpy or pyarrow) is never disguised as a user error. Each
program prints the line its own way (the pipeline through rich, in colour); the rule
itself is here, once, in :func:`run_app`. This module imports neither the media stack
nor torch: the trainer runs without the first, and ``--help`` starts without the second.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for Ctrl-C


class UserError(ValueError):
    """An error the user can fix (a bad argument, a foreign or damaged input).

    Both CLIs print it as one line ``error: <message>`` and exit 2. It is the base of
    every such error in the project; anything else keeps its traceback, so a bug is
    never disguised as a user error. (It subclasses ``ValueError`` so that callers
    that catch a bad value keep working.)
    """


#: Prints one user-facing line; it gets the message without the ``error:`` prefix.
Report = Callable[[str], None]


@contextlib.contextmanager
def user_errors(report: Report, line: Callable[[BaseException], str] = str) -> Iterator[None]:
    """Report a :class:`UserError` raised in the block as one line; exit 2.

    ``line`` turns the exception into its message; a message that spans lines (a
    parser's or ffmpeg's text quoted in it) is joined into one. Any other exception
    passes through unchanged (a bug keeps its traceback).
    """
    try:
        yield
    except UserError as exc:
        report(one_line(line(exc)))
        raise SystemExit(EXIT_USER_ERROR) from None


def one_line(message: str) -> str:
    """``message`` with its lines joined by spaces (blank lines and indentation dropped)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _is_click_error(exc: BaseException) -> bool:
    """A click usage error (unknown command, bad option), from whichever copy of click
    typer runs on: recent typer releases carry their own, whose classes are not click's."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def run_app(
    app: Callable[..., Any],
    argv: Sequence[str] | None,
    report: Report,
    line: Callable[[BaseException], str] = str,
) -> None:
    """Run a typer ``app`` on ``argv`` outside click's standalone mode; end the process.

    A :class:`UserError`: one line, exit 2 (:func:`user_errors`); a command's
    ``typer.Exit(n)`` or non-zero return: exit ``n``; Ctrl-C: ``interrupted``, exit
    130; click's usage errors: its usage text and its exit code; click's abort: exit 1;
    any other exception: its traceback, exit 1.
    """
    import click
    import typer

    with user_errors(report, line):
        try:
            # standalone_mode=False hands exceptions (and typer.Exit codes) back to us.
            code = app(args=argv, standalone_mode=False)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            report("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Abort, typer.Abort):
            sys.exit(1)
        except Exception as exc:
            if not _is_click_error(exc):
                raise
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    if isinstance(code, int) and code:
        sys.exit(code)
