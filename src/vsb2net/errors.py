"""User-facing errors.

Anything the user can fix (a missing file, a bad value, an unknown class name) is raised as a
``VsbError`` whose message says what was wrong, where, and how to fix it.  The CLI prints that
message alone and exits non-zero; any other exception is a bug and keeps its traceback.
"""


class VsbError(Exception):
    """An error in the user's input or environment, with a message meant for the user."""
