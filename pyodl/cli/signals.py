"""Ctrl-C and SIGTERM: a command stops cleanly, with one line and nothing half-written."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
from collections.abc import Iterator


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every ``with`` and ``finally`` on the way out
    (temporary build folders, boards, half-written cache entries) is unwound."""


class Signals:
    """Ctrl-C and SIGTERM for one command: each raises at once (KeyboardInterrupt, Terminated) and is
    remembered. TensorFlow does not always let the exception through: raised while it traces a function, it
    comes out as a SystemError or AttributeError, or is printed and dropped while training goes on (seen under
    load). So the progress callback raises it again, and whatever error ends the command after a signal is
    reported as that signal.

    From the signal on, what the interrupted work prints to ``sys.stderr`` goes nowhere: a KeyboardInterrupt
    landing inside TensorFlow can make it print a traceback of its own (an exception "ignored" in a callback,
    or a SystemError from an import it was in) before the command's one line, which is printed once the
    streams are back."""

    def __init__(self) -> None:
        self.received: int | None = None

    def handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            sys.stderr = io.StringIO()  # a sink: the interrupted work's last words are not the user's concern
            sys.unraisablehook = lambda _unraisable: None
            threading.excepthook = lambda _args: None
        self.received = signum
        self.raise_again()

    def raise_again(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated
        if self.received is not None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handles SIGINT and SIGTERM while the command runs, where Python can: on the main thread, and not
        for a signal the process ignores (nohup, a background job)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous = {sig: handler for sig, handler in previous.items() if handler is not signal.SIG_IGN}
        hooks = sys.stderr, sys.unraisablehook, threading.excepthook
        for sig in previous:
            signal.signal(sig, self.handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            sys.stderr, sys.unraisablehook, threading.excepthook = hooks

