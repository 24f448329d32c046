"""Errors a user can cause, and how entry points report them: :func:`exit_on_user_error` prints the
message as one ``error:`` line and exits with status 2."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape


class CifarlabError(Exception):
    """A problem with the user's input (config, data, checkpoint). The message says what was
    wrong and what to do; entry points print it without a traceback and exit non-zero."""


class ConfigError(CifarlabError, ValueError):
    """A config value is out of range or inconsistent (also a ``ValueError``, for code that expects one)."""


class DataError(CifarlabError):
    """The dataset is missing, truncated or malformed."""


EXIT_USER_ERROR = 2


def find_user_error(err: BaseException) -> CifarlabError | None:
    """The :class:`CifarlabError` that caused ``err``, if any (Hydra's instantiate wraps them)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, CifarlabError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Print a user error as ``error: <message>`` on stderr and exit with status 2; re-raise the rest."""
    try:
        yield
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        # escaped: "pip install -e '.[mlflow]'" is text, not rich markup
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(user_error))}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USER_ERROR)
