"""Safe file output shared by every writer of the library.

- :func:`atomic_write` writes a set of files into one folder all-or-nothing
  and, without ``overwrite``, claims the names at commit time (under a lock
  file), so that of two runs into one folder exactly one wins;
- :func:`atomic_directory` builds a whole folder (a cohort) beside its final
  place and renames it in at the end; with a manifest it replaces only a
  folder that it wrote itself, unchanged;
- :func:`check_outputs` refuses to replace existing outputs without
  ``overwrite`` and refuses, always, to write over an input of the run;
- :func:`check_path_component` and :func:`check_inside` keep paths taken
  from files (``participant_id``) or options (``--prefix``) inside their folder;
- :func:`csv_safe` and :func:`write_csv` escape identifiers written to CSV
  against spreadsheet formula injection.

Temporary files and folders are named
``.skperfusion-tmp-<pid>-<host>-<token>-<name>`` (backups of replaced files
``.skperfusion-bak-...``; ``<host>`` a short hash of the machine's name): a
later run on the same machine removes the ones whose process no longer
exists, so a killed run leaves nothing behind for long, while those of other
machines sharing the folder (a cluster) are left alone. Every name starting
with ``.skperfusion-`` is reserved: no output may take one. Folders a failed
or interrupted write created are removed again when they are left empty.
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path

from ._signals import signals_held

__all__ = ["RESERVED_PREFIX", "atomic_directory", "atomic_write", "check_inside",
           "check_outputs", "check_path_component", "committed", "csv_safe",
           "remove_stale_temporaries", "write_csv"]

RESERVED_PREFIX = ".skperfusion-"
"""Start of the names skperfusion keeps for itself (temporaries, backups, lock, manifests)."""

_TEMP = ".skperfusion-tmp-"
_BACKUP = ".skperfusion-bak-"
_LOCK = ".skperfusion-lock"
# The commit of a set takes milliseconds; a lock held longer belongs to a stuck run.
_LOCK_WAIT_S = 60.0
# Longest file name most file systems take (NAME_MAX), in bytes.
_NAME_MAX = 255
# Folders being written by atomic_write (one entry per call, any thread), and
# temporary folders of atomic_directory that failed: no write may enter those,
# so that worker threads still running after an interrupt cannot recreate them.
_ACTIVITY = threading.Condition()
_WRITING = []
_CLOSED = set()
# How long a failed atomic_directory waits for writes under way in its folder.
_DRAIN_S = 60.0
# Every file and folder put in place by this process, in order (see committed()).
_COMMITTED = []
_OWNED = re.compile(rf"^(?:{re.escape(_TEMP)}|{re.escape(_BACKUP)})(\d+)-([0-9a-f]{{8}})-"
                    "[0-9a-f]{8}-")
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
# Signals that end a command: held back while a set of files is renamed in.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _umask():
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid):
    # On Windows os.kill(pid, 0) would terminate the process: never probe there.
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _owned_name(prefix, name):
    return f"{prefix}{os.getpid()}-{_HOST}-{secrets.token_hex(4)}-{name}"


def remove_stale_temporaries(folder):
    """Remove the temporary files and folders that killed runs left in ``folder``.

    Only entries named by this module (``.skperfusion-tmp-<pid>-<host>-...``
    and ``.skperfusion-bak-<pid>-<host>-...``) of this machine whose process
    ``<pid>`` no longer runs are removed; those of a run still in progress,
    or of another machine, are kept.

    Parameters
    ----------
    folder : str or path-like
        Folder to clean; nothing happens if it does not exist.

    Returns
    -------
    removed : list of pathlib.Path
        The removed entries.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _OWNED.match(entry.name)
        if match is None or match.group(2) != _HOST or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _check_target(path):
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"cannot write {path}: a folder of that name exists.")
    if path.is_symlink():
        raise FileExistsError(f"cannot write {path}: it is a symbolic link; remove it first.")


def _commit(staged):
    """Rename every temp file onto its target; undo all of it on any failure.

    Existing targets are first moved to backups, so that a failure (or a
    stop signal) at any point can restore the previous set exactly; a
    target without a temp file (None) is only removed.
    """
    backups, placed = [], []
    try:
        for temp, final in staged:
            if final.exists():
                backup = final.with_name(_owned_name(_BACKUP, final.name))
                os.replace(final, backup)
                backups.append((backup, final))
            if temp is not None:
                os.replace(temp, final)
                placed.append(final)
    except BaseException:
        _undo(placed, backups)
        raise
    return placed, backups


def _undo(placed, backups):
    for final in placed:
        final.unlink(missing_ok=True)
    for backup, final in backups:
        os.replace(backup, final)


def committed(since=0):
    """The outputs this process has put in place, complete, that still exist.

    Parameters
    ----------
    since : int, default=0
        Skip the first ``since`` commits (``len(committed())`` taken before).

    Returns
    -------
    paths : list of pathlib.Path
        Files written by :func:`atomic_write` and folders by
        :func:`atomic_directory` (those inside a folder that was later
        removed, such as a cohort's temporary folder, no longer exist).
    """
    return [path for path in _COMMITTED[since:] if path.exists()]


def _inside(path, folder):
    return path == folder or folder in path.parents


@contextlib.contextmanager
def _writing(out_dir):
    """Register a write into ``out_dir``; refused inside a closed temporary folder."""
    out_dir = Path(os.path.abspath(out_dir))
    with _ACTIVITY:
        closed = next((folder for folder in _CLOSED if _inside(out_dir, folder)), None)
        if closed is not None:
            raise FileNotFoundError(f"cannot write into {out_dir}: the run was stopped and its "
                                    f"temporary folder {closed} removed.")
        _WRITING.append(out_dir)
    try:
        yield
    finally:
        with _ACTIVITY:
            _WRITING.remove(out_dir)
            _ACTIVITY.notify_all()


def _close(folder):
    """Refuse new writes under ``folder``, then wait for those under way to end."""
    folder = Path(os.path.abspath(folder))
    with _ACTIVITY:
        _CLOSED.add(folder)
        _ACTIVITY.wait_for(lambda: not any(_inside(path, folder) for path in _WRITING),
                           timeout=_DRAIN_S)


def _make_folder(folder):
    """Create ``folder`` and its missing parents; return the created ones, deepest first."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_if_empty(created):
    """Remove folders made by :func:`_make_folder` that are still empty (deepest first)."""
    for path in created:
        try:
            path.rmdir()
        except OSError:  # not empty (another run wrote there), or already gone
            return


def _check_length(name, what):
    """Refuse a name whose temporary form would exceed the file system's name limit."""
    longest = len(_owned_name(_BACKUP, "").encode())
    if len(str(name).encode()) + longest > _NAME_MAX:
        raise ValueError(f"{what} {str(name)[:40]!r}... is {len(str(name).encode())} bytes long; "
                         f"at most {_NAME_MAX - longest} are possible here (file names are "
                         f"limited to {_NAME_MAX} bytes).")


def _lock_is_stale(lock):
    """Whether ``lock`` was left by a dead process of this machine."""
    try:
        pid, host = lock.read_text().split()
        return host == _HOST and not _alive(int(pid))
    except (OSError, ValueError):  # being written, or already gone: not stale yet
        return False


@contextlib.contextmanager
def _commit_lock(folder):
    """Hold ``folder/.skperfusion-lock`` (created with ``O_EXCL``) while the block runs.

    Runs writing into one folder commit one after the other, so that their
    sets never interleave and a run without ``overwrite`` sees, under the
    lock, whether another run has written its names meanwhile. A lock whose
    process (on this machine) no longer exists is broken; one held longer
    than a minute is an error.
    """
    lock = folder / _LOCK
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if _lock_is_stale(lock):
                lock.unlink(missing_ok=True)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"another run has held {lock} for over {_LOCK_WAIT_S:g} s; "
                                   "if no skperfusion run writes into "
                                   f"{folder}, remove {lock}.") from None
            else:
                time.sleep(0.01)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{os.getpid()} {_HOST}\n")
        yield
    finally:
        lock.unlink(missing_ok=True)


def atomic_write(writers, out_dir, *, remove=(), overwrite=True):
    """Write a set of files into one folder all-or-nothing.

    Every file is first written to a temporary file in ``out_dir`` (named
    ``.skperfusion-tmp-<pid>-<host>-<token>-<name>``); only when all writes
    succeeded are they renamed onto their final names, with SIGINT and
    SIGTERM held back meanwhile. If a rename fails, or a stop signal came
    during the renames, every file is put back as it was (replaced files
    are restored from backups) and the error is raised. So a failed or
    interrupted call leaves either the complete new set or the previous
    state, and no temp file. Targets are checked before anything is
    written: a folder or a symbolic link of a target's name is an error.
    Temporary files of earlier, killed runs are removed, and folders this
    call created are removed again if it fails before its set is in place.

    The renames happen under a lock file, ``out_dir/.skperfusion-lock``
    (created with ``O_EXCL``): runs writing into one folder commit one after
    the other. With ``overwrite=False`` the targets are checked again under
    the lock, so that of two runs started together into one folder exactly
    one writes its set and the other fails, writing nothing.

    Existing files are replaced with ``overwrite``: callers refuse them
    beforehand where the user has to opt in (:func:`check_outputs`). Files
    of an earlier set that the new one does not have (e.g. a ``K2`` map of
    an earlier run with leakage correction) are named in ``remove``: they go
    in the same step, so the folder never mixes two runs' outputs. The files
    get the permissions an ordinary ``open`` would give them
    (``0o666 & ~umask``).

    Parameters
    ----------
    writers : dict of str to callable
        Final file name (relative to ``out_dir``, no folder part) to a
        function writing the file's content to the path it receives; that
        path has the final name's extensions (nibabel picks compression
        from them).
    out_dir : str or path-like
        Target folder, created if needed.
    remove : iterable of str, default=()
        File names in ``out_dir`` (not in ``writers``) to remove together
        with the renames, where they exist.
    overwrite : bool, default=True
        Replace existing targets. With False, a target (or a name of
        ``remove``) that exists when the set is committed is an error and
        nothing is written.

    Returns
    -------
    paths : list of pathlib.Path
        The written files, in the order of ``writers``.

    Raises
    ------
    IsADirectoryError, FileExistsError
        A target is a folder or a symbolic link (nothing is written), or,
        without ``overwrite``, exists at commit time.
    ValueError
        A file name has a folder part, is reserved (``.skperfusion-...``) or
        is too long for the file system.
    TimeoutError
        Another run held the folder's lock for over a minute.
    """
    out_dir = Path(out_dir)
    remove = [name for name in remove if name not in writers]
    for name in [*writers, *remove]:
        check_path_component(name, what="output file name")
        _check_length(name, "output file name")
    finals = [out_dir / name for name in writers]
    removed = [out_dir / name for name in remove]
    for final in [*finals, *removed]:
        _check_target(final)
    with _writing(out_dir):
        return _write_set(writers, out_dir, finals, removed, overwrite)


def _write_set(writers, out_dir, finals, removed, overwrite):
    """:func:`atomic_write` once its checks passed: stage, claim, commit."""
    created = _make_folder(out_dir)
    mode = 0o666 & ~_umask()
    staged, placed = [], []
    try:
        remove_stale_temporaries(out_dir)
        for (name, write), final in zip(writers.items(), finals, strict=True):
            temp = out_dir / _owned_name(_TEMP, name)
            staged.append((temp, final))
            temp.touch(mode=0o600, exist_ok=False)
            write(temp)
            os.chmod(temp, mode)
        with _commit_lock(out_dir), signals_held() as stop_requested:
            taken = [final for final in [*finals, *removed] if final.exists()
                     or final.is_symlink()] if not overwrite else []
            if taken:
                raise FileExistsError(f"{taken[0]} was written by another run while this one "
                                      "worked; nothing was written (pass --overwrite to "
                                      "replace it).")
            placed, backups = _commit([*staged, *((None, final) for final in removed)])
            if stop_requested():
                # Undo the set: the stop is delivered when the signals are released.
                _undo(placed, backups)
                placed, backups = [], []
            _COMMITTED.extend(placed)
        for backup, _ in backups:
            backup.unlink(missing_ok=True)
    finally:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        if not placed:
            _remove_if_empty(created)
    return finals


def _listing(folder, manifest):
    """Relative path to size in bytes (None for a folder, -1 for a link) under ``folder``."""
    entries = {}
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                entries[relative] = -1
            elif path.is_dir():
                entries[relative] = None
            elif relative != manifest:
                entries[relative] = path.stat().st_size
    return entries


def _manifest_problem(folder, manifest):
    """Why ``folder`` is not exactly what its ``manifest`` lists (None when it is)."""
    try:
        listed = json.loads((folder / manifest).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return (f"it holds no valid {manifest}, the list of what skperfusion wrote there, so "
                "it may hold data of yours")
    if not isinstance(listed, dict):
        return f"its {manifest} is not a list of files"
    actual = _listing(folder, manifest)
    foreign = sorted(name for name in actual if name not in listed or listed[name] == -1)
    if foreign:
        return f"{folder / foreign[0]} was not written by skperfusion"
    changed = sorted(name for name, size in actual.items() if listed[name] != size)
    if changed:
        return f"{folder / changed[0]} was changed since skperfusion wrote it"
    return None


@contextlib.contextmanager
def atomic_directory(target, *, overwrite=False, manifest=None):
    """Build a folder beside ``target`` and rename it into place at the end.

    The block receives a temporary sibling folder
    (``.skperfusion-tmp-<pid>-<host>-<token>-<name>``) to fill. When the block ends
    normally the folder is renamed to ``target`` (with SIGINT/SIGTERM held
    back); on an exception or interrupt it is removed, and ``target`` is
    left as it was (parent folders this call created are removed again).
    Stale temporary siblings of killed runs are removed.

    Parameters
    ----------
    target : str or path-like
        Final folder.
    overwrite : bool, default=False
        Replace an existing ``target`` as a whole (it is moved aside and
        removed only after the new folder is in place). Without it an
        existing non-empty ``target`` is an error; an empty one is replaced.
    manifest : str or None, default=None
        Name of a file (reserved, e.g. ``".skperfusion-cohort.json"``)
        written into the folder at the end, listing every file and folder in
        it with its size. With a manifest, ``overwrite`` replaces a
        non-empty ``target`` only if it holds that file and exactly what it
        lists (no other file, no size changed): a folder holding anything
        else is refused, even with ``overwrite``, and left unchanged.

    Yields
    ------
    folder : pathlib.Path
        The temporary folder to write into.
    """
    target = Path(target)
    parent = target.parent
    _check_length(target.name, "output folder name")
    _check_replaceable(target, overwrite, manifest)
    created = _make_folder(parent)
    done = False
    temp = parent / _owned_name(_TEMP, target.name)
    try:
        remove_stale_temporaries(parent)
        temp.mkdir()
        yield temp
        if manifest is not None:
            (temp / manifest).write_text(json.dumps(
                {"written_by": "skperfusion", "files": _listing(temp, manifest)},
                indent=1, sort_keys=True) + "\n")
        _check_replaceable(target, overwrite, manifest)
        with signals_held() as stop_requested:
            backup = None
            if target.exists():
                backup = parent / _owned_name(_BACKUP, target.name)
                os.replace(target, backup)
            try:
                os.replace(temp, target)
            except BaseException:
                if backup is not None:
                    os.replace(backup, target)
                raise
            done = True
            if stop_requested():
                os.replace(target, temp)
                if backup is not None:
                    os.replace(backup, target)
                backup, done = None, False
            else:
                _COMMITTED.append(target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if not done:
            # Worker threads of the block (joblib's threading backend) may still be
            # writing into it after an interrupt: shut them out first.
            _close(temp)
        shutil.rmtree(temp, ignore_errors=True)
        if not done:
            _remove_if_empty(created)


def _check_replaceable(target, overwrite, manifest=None):
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FileExistsError(f"{target} exists and is not a folder; choose another output.")
    if not (target.is_dir() and any(target.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(f"{target} exists and is not empty; pass --overwrite to "
                              "replace it.")
    problem = None if manifest is None else _manifest_problem(target, manifest)
    if problem is not None:
        raise FileExistsError(f"refusing to replace {target}, even with --overwrite: {problem}. "
                              "Only a folder skperfusion wrote, unchanged, is replaced; "
                              "choose another output or empty it yourself.")


def _resolved(path):
    return Path(os.path.realpath(path))


def check_outputs(outputs, *, inputs=(), overwrite=False, folders=False):
    """Refuse outputs that exist (unless ``overwrite``) or that are inputs of the run.

    The one check every writing command makes before it starts working.

    Parameters
    ----------
    outputs : iterable of str or path-like
        Files the run will write (folders with ``folders=True``).
    inputs : iterable of str or path-like, default=()
        Files and folders the run reads. An output that is an input, holds
        one, or is an existing file inside an input folder is refused even
        with ``overwrite`` (links are followed).
    overwrite : bool, default=False
        Allow replacing existing outputs (never inputs).
    folders : bool, default=False
        The outputs are folders, written as a whole (an empty existing
        folder is not an existing output).

    Raises
    ------
    FileExistsError
        An output exists and ``overwrite`` is False, is a symbolic link, or
        is a file where a folder is expected.
    IsADirectoryError, NotADirectoryError
        A folder exists where a file is expected, or a file where the
        output's folder should be.
    ValueError
        An output is an input of the run (the message names both), its name
        is reserved (``.skperfusion-...``) or too long for the file system.
    """
    inputs = [_resolved(path) for path in inputs]
    for output in map(Path, outputs):
        if output.name.startswith(RESERVED_PREFIX):
            raise ValueError(f"output {output} starts with {RESERVED_PREFIX!r}, reserved for "
                             "skperfusion's temporary files (a later run would delete it); "
                             "choose another name.")
        _check_length(output.name, "output name")
        real = _resolved(output)
        for source in inputs:
            if (real == source or (output.exists() and source in real.parents)
                    or (folders and real in source.parents)):
                raise ValueError(f"refusing to write {output}: it is or holds an input of "
                                 f"this run ({source}); choose another output.")
        if output.is_symlink():
            raise FileExistsError(f"{output} is a symbolic link; refusing to write through "
                                  "it.")
        if output.parent.exists() and not output.parent.is_dir():
            raise NotADirectoryError(f"{output.parent} is a file; the output {output.name} "
                                     "needs a folder there.")
        if folders:
            if output.exists() and not output.is_dir():
                raise FileExistsError(f"{output} exists and is not a folder.")
            exists = output.is_dir() and any(output.iterdir())
        else:
            if output.is_dir():
                raise IsADirectoryError(f"{output} is a folder; the output is a file.")
            exists = output.exists()
        if exists and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it.")


_SEPARATORS = tuple({"/", "\\", os.sep, os.altsep or "/"})


def check_path_component(name, *, what="name", pattern=None):
    """Check that ``name`` is one plain path component (no folder, no ``..``).

    Parameters
    ----------
    name : str
        The candidate, e.g. a ``participant_id`` or a file name prefix.
    what : str, default="name"
        What it is, for the error message (e.g. ``"participant_id in row 3
        of participants.tsv"``).
    pattern : str or None, default=None
        Regular expression the whole name must also match.

    Returns
    -------
    name : str
        The name, unchanged.

    Raises
    ------
    ValueError
        Empty, ``.`` or ``..``, absolute, holding a path separator or a NUL,
        not matching ``pattern``, or starting with the reserved
        ``.skperfusion-`` (the names of temporaries, which a later run
        removes).
    """
    text = str(name)
    if text.startswith(RESERVED_PREFIX):
        raise ValueError(f"{what} {text!r} starts with {RESERVED_PREFIX!r}, reserved for "
                         "skperfusion's temporary files (a later run would delete it); "
                         "choose another name.")
    bad = (not text or text in (".", "..") or "\0" in text or os.path.isabs(text)
           or any(sep in text for sep in _SEPARATORS))
    if bad or (pattern is not None and re.fullmatch(pattern, text) is None):
        expected = f" matching {pattern}" if pattern else ""
        raise ValueError(f"{what} {text!r} is not a single file name{expected} (no folder "
                         "part, no '..'); refusing a path that could leave its folder.")
    return text


def check_inside(path, root, *, what="path", allow_links=False):
    """Check that ``path``, links followed, lies inside ``root``.

    Parameters
    ----------
    path : str or path-like
        The path to check (it need not exist).
    root : str or path-like
        The folder it must stay in.
    what : str, default="path"
        What it is, for the error message.
    allow_links : bool, default=False
        Accept a path that leaves ``root`` through a symbolic link.

    Returns
    -------
    path : pathlib.Path
        ``path`` unchanged.

    Raises
    ------
    ValueError
        The resolved path is outside the resolved ``root``.
    """
    path = Path(path)
    if not allow_links:
        real, real_root = _resolved(path), _resolved(root)
        if real != real_root and real_root not in real.parents:
            raise ValueError(f"{what} {path} leads outside {root} (to {real}, through a "
                             "symbolic link); refusing it unless such links are allowed "
                             "(--allow-external-links).")
    return path


def csv_safe(value):
    """Escape a text cell so that a spreadsheet shows it instead of running it.

    Cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return are formulas to spreadsheet programs (CSV injection); they get a
    leading apostrophe, the escape those programs recognise. Other values
    are returned unchanged.

    Parameters
    ----------
    value : object
        Cell value (only strings are changed).

    Returns
    -------
    value : object
        ``value``, with a leading ``'`` if it is a text that a spreadsheet
        would evaluate.

    Examples
    --------
    >>> from skperfusion._io import csv_safe
    >>> csv_safe("=HYPERLINK(\\"http://x\\")"), csv_safe("sub-001")
    ('\\'=HYPERLINK("http://x")', 'sub-001')
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(frame, path, **kwargs):
    """Write a table as CSV with its text cells escaped by :func:`csv_safe`.

    Identifiers (``participant_id`` in the index or a column) come from
    files the user may not control; a spreadsheet opening the CSV then shows
    them instead of evaluating them. Numbers are written unchanged.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : str or path-like
        Output file (usually a temp path given by :func:`atomic_write`).
    **kwargs
        Passed to :meth:`pandas.DataFrame.to_csv` (e.g. ``index``).
    """
    from pandas.api.types import is_numeric_dtype

    frame = frame.copy()
    if not is_numeric_dtype(frame.index):
        frame.index = frame.index.map(csv_safe)
    frame.columns = frame.columns.map(csv_safe)
    for k in range(frame.shape[1]):
        if not is_numeric_dtype(frame.iloc[:, k]):
            frame.iloc[:, k] = frame.iloc[:, k].map(csv_safe)
    frame.to_csv(path, **kwargs)
