"""Running a command line: user errors become one line on stderr and exit status 2.

Also the small helpers every command's options share: `positive_int` (an argparse type) and
`given_options` (which options the user actually wrote, as opposed to defaults).
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Callable

RESUME_NOTE = "finished records are saved; run the same command again to resume"
_SYSTEM_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: records written so far stay, the run can be resumed."""


def user_errors() -> tuple[type[BaseException], ...]:
    from .backends import PromptTooLong
    from .backends.openai import ServerError
    from .data import DatasetError
    from .models import ModelError
    from .records import RecordError
    from .store import RunDirError

    return (PromptTooLong, ServerError, DatasetError, ModelError, RecordError, RunDirError, FileNotFoundError, ValueError)


def _whole_number(minimum: int, rule: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        return value
    return parse


positive_int = _whole_number(1, "must be at least 1")  # argparse type: an integer of at least 1
non_negative_int = _whole_number(0, "must be 0 or more")  # argparse type: an integer of at least 0


def run_dir_parser(prog: str, description: str, run_dir_help: str) -> argparse.ArgumentParser:
    """The parser of a command over an existing run directory: RUN_DIR and --resamples."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run_dir", help=run_dir_help)
    parser.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    return parser


def positive_float(text: str) -> float:
    """argparse type: a finite number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def given_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The dests of the options present on the command line (whatever their value)."""
    saved = [(action, action.default) for action in parser._actions]
    saved_defaults = dict(parser._defaults)
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        parser._defaults.clear()
        namespace, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
        parser._defaults.update(saved_defaults)
    return set(vars(namespace))


def _terminate(signum, frame) -> None:
    raise Terminated()


def entry_point(main: Callable[[list[str] | None], int]) -> Callable[[], None]:
    """A stage's console script (setup.cfg): the runner `python -m` uses, so both give one-line
    errors (exit 2) and the resume note on Ctrl-C or SIGTERM."""
    def entry() -> None:
        sys.exit(run_main(main))

    entry.__doc__ = f"The console script of {main.__module__}."
    return entry


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk or the file system refused (full, read-only, not permitted)
        if exc.errno not in _SYSTEM_REFUSALS:
            raise
        place = f"{exc.filename}: " if exc.filename else ""
        note = f" ({RESUME_NOTE} once there is room)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(f"error: {place}{exc.strerror or exc}{note}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"{what}: {RESUME_NOTE}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
