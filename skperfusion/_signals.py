"""Stop signals (SIGINT, SIGTERM): every way the library handles them, in one module.

- :func:`signals_held`: hold them back while files are being committed
  (``skperfusion._io``), deliver them once the files are consistent;
- :func:`stop_signals_noted`: note whether one came while their handlers
  still run (the PHAE training tells a real Ctrl-C from skorch's early
  stopping, both a ``KeyboardInterrupt``);
- :func:`sigterm_as_interrupt`: raise SIGTERM as :class:`Terminated`, a
  ``KeyboardInterrupt``, so the command line cleans up the same way for both.

Python runs signal handlers in the main thread only: outside it, each of
them leaves the handlers alone.
"""

import contextlib
import signal
import threading

__all__ = [
    "STOP_SIGNALS",
    "Terminated",
    "signals_held",
    "sigterm_as_interrupt",
    "stop_signals_noted",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask a command to stop: Ctrl-C and ``kill``."""


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT/SIGTERM back in this block; yield a function telling if one came.

    The stop signals' handlers are replaced by one that only records them,
    and the recorded signals are raised again, to the previous handlers,
    when the block ends. Python runs signal handlers in the main thread
    only, whatever thread the signal reached, so this holds the signals for
    the whole process; outside the main thread nothing is held and the
    function always answers False.
    """
    if not _in_main_thread():
        yield lambda: False
        return
    received = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in STOP_SIGNALS}
    try:
        yield lambda: bool(received)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        # Delivered now, once the files are consistent again.
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


@contextlib.contextmanager
def stop_signals_noted():
    """Note the stop signals received in the block, their Python handlers still running."""
    received = []
    if not _in_main_thread():
        yield received  # signals reach the main thread only
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def noting(number, frame):
        received.append(number)
        previous[number](number, frame)

    watched = [number for number, handler in previous.items() if callable(handler)]
    for number in watched:
        signal.signal(number, noting)
    try:
        yield received
    finally:
        for number in watched:
            signal.signal(number, previous[number])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
