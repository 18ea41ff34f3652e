"""The one exception type for mistakes a user can fix.

Entry points catch `UserError` and print its message as a single line with a non-zero exit, so
every message must say what is wrong and what to do about it. Anything else that escapes is a
bug in gan_jax and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, data, run directory), not with the code."""
