"""The one exception type that means "the user's input or environment is wrong".

Usage:
    from pipeline.core.errors import UserError, Stopped, one_line
    raise UserError("data.sha256: expected 64 hex digits, got 'abc'")
    raise UserError(f"cannot read {path} ({one_line(e, 200)})") from None
    raise Stopped("stopped at the time budget after step 40 of 100: run the same command again to continue")

The CLI turns a UserError into its message on one line and exit code 2; anything else is a bug and keeps
its traceback. Library code raises it for every problem a user can fix (bad params, bad archive, missing
weights, a failed download) and never exits the process itself. Stopped is no error: a stage that stopped on
purpose before its end (train at its time budget), its work so far kept; the CLI prints its line and exits with
EXIT_STOPPED, which is not 0 so that `dvc repro` records nothing as done, and rerunning continues.
"""

EXIT_STOPPED = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, the user is invited to retry


class UserError(Exception):
    """A problem the user can fix. The message is shown as one line, without a traceback."""


class Stopped(Exception):
    """A stage stopped on purpose before its end; the message says how far it got and how to continue."""


def one_line(message: object, limit: int | None = None) -> str:
    """str(message) with every run of whitespace (newlines too) made one space, cut to `limit` characters if given."""
    text = " ".join(str(message).split())
    return text if limit is None else text[:limit]
