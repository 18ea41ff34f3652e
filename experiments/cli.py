"""What the study scripts' command lines share: lists in flags, and one line per user error."""

from __future__ import annotations

import sys
from typing import Callable

from gan_jax.errors import UserError


def comma_list(text: str, kind: type, flag: str) -> list:
    """'0,1,2' -> [0, 1, 2] for `flag`, or a UserError naming the flag."""
    try:
        return [kind(value) for value in text.split(",") if value]
    except ValueError:
        raise UserError(f"{flag} '{text}' is not a comma-separated list of "
                        f"{kind.__name__}s") from None


def run_command(command: str, commands: dict[str, Callable[[], object]]) -> int:
    """Runs `commands[command]()`; a UserError becomes one line on stderr and exit code 2. A
    command that returns an int chooses the exit code (e.g. a study stopped before its end)."""
    try:
        result = commands[command]()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
