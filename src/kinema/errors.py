"""The error family whose messages are meant for users: the CLI prints them as one line, exit 2."""


class KinemaError(Exception):
    """A problem with the user's input (prompt, size, file, spec, checkpoint); the message names it."""
