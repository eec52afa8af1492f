"""The errors data sources raise for data the user must fix, so callers catch one type."""


class DatasetError(Exception):
    """A dataset that cannot be used as configured; the message says what to do."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset is not available locally; the message says how to make it available."""


class DatasetUnreadableError(DatasetError, ValueError):
    """A dataset's files exist but cannot be read (truncated, not the expected format)."""
