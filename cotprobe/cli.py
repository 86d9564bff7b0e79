"""Running a command line: user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from typing import Callable


def user_errors() -> tuple[type[BaseException], ...]:
    from .backends import PromptTooLong
    from .backends.openai import ServerError
    from .data import DatasetError
    from .models import ModelError
    from .records import RecordError
    from .store import RunDirError

    return (PromptTooLong, ServerError, DatasetError, ModelError, RecordError, RunDirError, FileNotFoundError, ValueError)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    try:
        return main(argv)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished records are saved; run the same command again to resume", file=sys.stderr)
        return 130
