"""The lab's error: what failed and what to do."""

from runbooks.errors import EXIT_FAILED, WatchkeeperError


class LabError(WatchkeeperError):
    """The lab could not be built, started or stopped; the message says why and what next."""

    exit_code = EXIT_FAILED
