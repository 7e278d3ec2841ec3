"""The one exception type for errors a user can cause (bad input, bad weights)."""


class EdgecountError(Exception):
    """An error caused by the user's input; the CLI prints it as one line."""
