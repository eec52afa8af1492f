"""The error every data source raises when its files are missing, so callers catch one type."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not available locally; the message says how to make it available."""
