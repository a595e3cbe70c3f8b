"""Exceptions whose messages are meant for the user, printed by the CLI without a traceback."""


class FineCLIPERError(Exception):
    """Base class: the message says what is wrong and names the file, key or value."""

    exit_code = 1


class ConfigError(FineCLIPERError):
    """A configuration file or override is malformed, unknown or impossible."""

    exit_code = 2


class LayoutError(FineCLIPERError):
    """A dataset root does not have the layout of the dataset it was read as."""

    exit_code = 2


class InputError(FineCLIPERError):
    """An input file (checkpoint, training state, text file) is corrupt, unsafe or unreadable."""

    exit_code = 2
