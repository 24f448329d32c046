"""Errors a user can cause. Entry points print their message and exit with status 2."""


class CifarlabError(Exception):
    """A problem with the user's input (config, data, checkpoint). The message says what was
    wrong and what to do; entry points print it without a traceback and exit non-zero."""


class ConfigError(CifarlabError, ValueError):
    """A config value is out of range or inconsistent (also a ``ValueError``, for code that expects one)."""


class DataError(CifarlabError):
    """The dataset is missing, truncated or malformed."""
