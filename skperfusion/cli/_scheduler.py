"""``--scheduler ADDRESS``: run a cohort command's per-exam work on a dask cluster."""

import contextlib

__all__ = ["add_scheduler_argument", "scheduler"]


def add_scheduler_argument(parser):
    """Add ``--scheduler``, the address of an existing dask scheduler.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argparse._ArgumentGroup
    """
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the per-exam work on the dask cluster whose scheduler is at "
                             "ADDRESS (e.g. tcp://10.0.0.1:8786), through joblib's dask "
                             "backend; needs the 'dask' extra. Results equal a local run")


@contextlib.contextmanager
def scheduler(address, timeout=30):
    """Route joblib's parallel loops to a dask cluster while the block runs.

    Parameters
    ----------
    address : str or None
        Scheduler address; None runs locally (the block runs unchanged).
    timeout : float, default=30
        Seconds to wait for the scheduler before giving up.

    Yields
    ------
    client : distributed.Client or None

    Raises
    ------
    ValueError
        When dask's ``distributed`` package is not installed.
    OSError
        When no scheduler answers at ``address`` within ``timeout``.
    """
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs dask's distributed package: "
                         "pip install 'skperfusion[dask]'") from None
    import joblib

    with Client(address, timeout=timeout) as client, joblib.parallel_config(backend="dask"):
        yield client
