"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a config value, a data file, a folder. The message says what was wrong and what to do."""


class ConfigError(UserError):
    """A config value is out of range or inconsistent."""


class DataError(UserError):
    """A dataset is missing, unreadable or malformed."""


class CheckpointError(UserError):
    """A checkpoint or run folder is missing, truncated or foreign."""


class TrainingDiverged(Exception):
    """NaN or inf appeared in the loss or the parameters; the last good checkpoint stays on disk."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a resumable checkpoint has been written."""
