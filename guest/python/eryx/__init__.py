"""eryx inside the sandbox: the host functions and their error type.

    from eryx import CallbackError, list_callbacks, invoke
"""

from _eryx.callbacks import invoke, list_callbacks
from _eryx.errors import CallbackError

__all__ = ["CallbackError", "invoke", "list_callbacks"]
