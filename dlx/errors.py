"""One error type for the user's mistakes, caught once by the CLI and shown as one line.

Library errors are wrapped `from e`, so DLX_DEBUG=1 (or HYDRA_FULL_ERROR=1) shows their cause.
"""


class DlxError(Exception):
    """A problem the user can fix: the message names it and says how."""


class ConfigError(DlxError):
    """A config value is wrong (bad type, out of range, unknown option)."""


class DataError(DlxError):
    """A dataset is missing, empty or malformed."""


class TrainingError(DlxError):
    """Training could not go on (non-finite loss, device failure)."""


def describe(e: BaseException) -> str:
    """An error as the one line the user reads: a DlxError's message; anything else (a bug in dlx
    or a library) its type and message, with the traceback opt-in. Not yet redacted."""
    if isinstance(e, DlxError):
        return str(e)
    return " ".join(f"{type(e).__name__}: {e}".split()) + " (set DLX_DEBUG=1 for the traceback)"
