"""The library's warnings: one helper that names the subject and points at the caller.

:func:`warn` attributes a warning to the first frame of the call stack outside
skperfusion and the libraries that merely call it back (scikit-learn's
wrappers, joblib, skorch), as pandas' ``find_stack_level`` does, instead of a
hand-counted ``stacklevel`` that is wrong as soon as the call path changes:
the warning then shows the user's line, and Python's default filter prints it
once per line of user code rather than once per internal call path.
"""

import functools
import importlib.util
import os
import re
import sys
import warnings

__all__ = ["find_stack_level", "recorded", "replayed", "warn"]


def _folder(package):
    """The folder of an installed package, found without importing it (torch stays unloaded)."""
    spec = importlib.util.find_spec(package)
    return os.path.join(spec.submodule_search_locations[0], "")


# Frames in these folders are not the user's code: the library itself and the
# libraries through which user code calls it (estimator wrappers, parallel loops).
_INTERNAL = tuple(_folder(package) for package in (__package__, "sklearn", "joblib", "skorch"))


def find_stack_level():
    """The ``stacklevel`` of the caller's first frame outside the internal folders.

    Returns
    -------
    stacklevel : int
        For :func:`warnings.warn` called by the function that called this
        one; when every frame is internal (a worker thread of a parallel
        loop), the outermost frame's level.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


def warn(message, category=UserWarning, *, subject=None):
    """Issue a warning attributed to the user's code, naming the subject.

    Parameters
    ----------
    message : str
        What happened and what it means for the results.
    category : type of Warning, default=UserWarning
        Warning class.
    subject : str or None, default=None
        Subject (exam) the warning is about; the message then starts with
        ``"subject <id>: "``.
    """
    if subject is not None:
        message = f"subject {subject}: {message}"
    warnings.warn(message, category, stacklevel=find_stack_level())


def recorded(function):
    """``function`` as a job of a parallel loop, returning its result and its warnings.

    Warnings issued in a worker process are printed there, attributed to the
    worker's frames, once per job: a study of 26 exams and 15 noise draws
    would print the same warning hundreds of times. Wrapped jobs record them
    instead, and :func:`replayed` issues them in the calling process.

    Parameters
    ----------
    function : callable
        The job.

    Returns
    -------
    job : callable
        Same arguments; returns ``(result, records)``, ``records`` a list of
        ``(category, message)`` pairs.
    """

    @functools.wraps(function)
    def job(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = function(*args, **kwargs)
        return result, [(record.category, str(record.message)) for record in caught]

    return job


_REPEATS = re.compile(r" \(and (\d+) more like it in other jobs\)$")


def replayed(jobs):
    """Yield the results of :func:`recorded` jobs, then issue their warnings once each.

    Warnings that differ only in their numbers (counts, subject ids) are
    issued once, the first of them, with the number of the others.

    Parameters
    ----------
    jobs : iterable of (object, list)
        What the recorded jobs returned (e.g. a joblib ``Parallel`` call).

    Yields
    ------
    result : object
        Each job's result, in order.
    """
    seen = {}
    for result, records in jobs:
        for category, message in records:
            match = _REPEATS.search(message)
            message, extra = (message[:match.start()], int(match[1])) if match else (message, 0)
            key = (category, re.sub(r"\d+(?:\.\d+)?", "#", message))
            first, count = seen.get(key, (message, 0))
            seen[key] = first, count + 1 + extra
        yield result
    for (category, _), (message, count) in seen.items():
        if count > 1:
            message += f" (and {count - 1} more like it in other jobs)"
        warnings.warn(message, category, stacklevel=find_stack_level())
