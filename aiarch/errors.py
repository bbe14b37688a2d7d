"""The errors a user can act on. Only the CLI prints them and turns them into exit codes.

Exit codes (documented in README.md):
    0  success
    1  the work failed (a service did not start, a run could not complete)
    2  bad input: flags, names, paths, aiarch.yaml
    130  interrupted (Ctrl-C); what was started has been cleaned up
    143  terminated (SIGTERM); the same clean-up as Ctrl-C
"""

from __future__ import annotations


class AiarchError(Exception):
    """A failure with a message written for the user, and an optional hint on what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UserInputError(AiarchError):
    """The user asked for something that cannot be done as asked: fix the input and retry."""

    exit_code = 2


class ConfigError(UserInputError):
    """aiarch.yaml is missing, unreadable or invalid; the message names the field path."""


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as a shell reports Ctrl-C
TERMINATED_EXIT_CODE = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that every clean-up path written
    for Ctrl-C runs for it too; only the exit code differs (143)."""


def interrupted_exit_code(interruption: BaseException) -> int:
    """143 for SIGTERM (`Terminated`), 130 for Ctrl-C."""
    return TERMINATED_EXIT_CODE if isinstance(interruption, Terminated) else INTERRUPTED_EXIT_CODE
