"""Atomic file output shared by every writer of the library."""

import os
import tempfile
from pathlib import Path


def _umask():
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(writers, out_dir):
    """Write several files all-or-nothing: temp files in ``out_dir``, then rename.

    ``writers`` maps a final file name to ``write(temp_path)``. Files are
    renamed only after every write succeeded, so an exception or interrupt
    leaves no partial output (and no temp file) behind. The files get the
    permissions an ordinary ``open`` would give them (``0o666 & ~umask``),
    not the private ``0o600`` of :func:`tempfile.mkstemp`.

    Parameters
    ----------
    writers : dict of str to callable
        Final file name (relative to ``out_dir``) to a function writing the
        file's content to the path it receives.
    out_dir : str or path-like
        Target folder, created if needed.

    Returns
    -------
    paths : list of pathlib.Path
        The written files, in the order of ``writers``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    staged = []
    try:
        for name, write in writers.items():
            # Same extensions as the final name: nibabel picks compression from them.
            stem = Path(name).name.split(".")[0]
            handle, temp = tempfile.mkstemp(dir=out_dir, prefix=f".{stem}.",
                                            suffix="".join(Path(name).suffixes))
            os.close(handle)
            staged.append((Path(temp), out_dir / name))
            write(Path(temp))
            os.chmod(temp, mode)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for temp, final in staged:
        os.replace(temp, final)
    return [final for _, final in staged]
