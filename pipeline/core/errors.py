"""The one exception type that means "the user's input or environment is wrong".

Usage:
    from pipeline.core.errors import UserError, one_line
    raise UserError("data.sha256: expected 64 hex digits, got 'abc'")
    raise UserError(f"cannot read {path} ({one_line(e, 200)})") from None

The CLI turns a UserError into its message on one line and exit code 2; anything else is a bug and keeps
its traceback. Library code raises it for every problem a user can fix (bad params, bad archive, missing
weights, a failed download) and never exits the process itself.
"""


class UserError(Exception):
    """A problem the user can fix. The message is shown as one line, without a traceback."""


def one_line(message: object, limit: int | None = None) -> str:
    """str(message) with every run of whitespace (newlines too) made one space, cut to `limit` characters if given."""
    text = " ".join(str(message).split())
    return text if limit is None else text[:limit]
