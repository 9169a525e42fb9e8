"""The one exception type a user sees: a message that fits on one line and says what to fix.

Anything raised as `PybenchError` is printed by the CLI as a single line on stderr with exit
status 2 and no traceback (unless `--debug`). Everything else is a bug and keeps its traceback.
"""


class PybenchError(Exception):
    """Bad input or an unusable environment, described in one actionable line."""

    exit_status = 2


class UnavailableError(PybenchError):
    """A framework (or device) asked for is not usable on this machine; the message says why."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM: the command stops, keeping what finished. `exit_status` is the
    shell's convention, 128 + the signal number (130, 143)."""

    def __init__(self, signal_name: str, exit_status: int):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name, self.exit_status = signal_name, exit_status
