"""The one exception type a user sees: a message that fits on one line and says what to fix.

Anything raised as `PybenchError` is printed by the CLI as a single line on stderr with exit
status 2 and no traceback (unless `--debug`). Everything else is a bug and keeps its traceback.
"""

import contextlib


class PybenchError(Exception):
    """Bad input or an unusable environment, described in one actionable line."""

    exit_status = 2


class OutputError(PybenchError):
    """An output file (results, predictions, a figure, the report) could not be written: a full
    disk, a read-only folder, a file size limit. Whatever was written before it stays."""


@contextlib.contextmanager
def writing(path):
    """Turn an OSError raised while writing `path` into one `OutputError` line naming it."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise OutputError(f"cannot write {path}: {reason}"
                          f"{f' (errno {error.errno})' if error.errno else ''}; results written before "
                          "it are intact") from None


class UnavailableError(PybenchError):
    """A framework (or device) asked for is not usable on this machine; the message says why."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM: the command stops, keeping what finished. `exit_status` is the
    shell's convention, 128 + the signal number (130, 143)."""

    def __init__(self, signal_name: str, exit_status: int):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name, self.exit_status = signal_name, exit_status
