"""Exceptions the sandboxed code can catch (no heavy imports here)."""


class CallbackError(Exception):
    """A host function failed. ``kind`` is "failed", "invalid_arguments" or
    "timeout"; the message is the host's."""

    def __init__(self, message, kind="failed"):
        super().__init__(message)
        self.kind = kind


CallbackError.__module__ = "eryx"
