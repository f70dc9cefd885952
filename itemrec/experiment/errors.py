"""Errors meant for users: the CLI prints them as one line and exits non-zero, no traceback."""


class UserError(Exception):
    """A mistake in the user's input (a file, a config value, an id): say what and where."""
