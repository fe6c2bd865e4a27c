"""Errors that the command line prints as one line instead of a traceback."""


class ConfigError(ValueError):
    """A setting is out of range or inconsistent with another one."""


class MissingDataError(FileNotFoundError):
    """A dataset or cached file that the run needs is absent."""
