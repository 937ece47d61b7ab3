"""What the library says to its user: diagnostics through ``logging``, notices
on a stream the user can turn off.

Data
    Every message of the client side goes to the logger of the module that
    has it (``logging.getLogger(__name__)``, so all sit under the
    ``dask_condordag`` logger), as htmap and dask-jobqueue do: problems the
    user should see (a workflow under ``/tmp``, a submit command the local
    runner ignores, a script that cannot start, ``ABORT-DAG-ON``, Ctrl-C
    while waiting) at WARNING, notices and progress lines at INFO. The
    execute-node shim (``worker.py``, ``boot.py``) prints where it runs, into
    the job's ``.err``; the CLI's output is the command's output.

Policy
    * Notices a user asked for -- progress lines, the ``run="auto"`` choice,
      where ``compute()`` wrote the workflow, "submitted as DAGMan job N",
      "nothing to submit", the local run's summary -- are also written,
      prefixed ``[dask-condordag]``, to a stream (``stderr`` unless one is
      given) unless ``progress=False``. So ``progress=False`` plus a handler
      on ``logging.getLogger("dask_condordag")`` routes every message; with
      no handler configured anywhere, Python's last-resort handler prints
      the WARNINGs on stderr.
    * The stream is looked up when the message is written (a redirected or
      captured ``sys.stderr`` is honoured).

Example::

    >>> import io, logging
    >>> out = io.StringIO()
    >>> notice(logging.getLogger("dask_condordag.demo"), "3 done of 3", stream=out)
    >>> out.getvalue()
    '[dask-condordag] 3 done of 3\\n'
    >>> notice(logging.getLogger("dask_condordag.demo"), "quiet", progress=False, stream=out)
    >>> out.getvalue().count("quiet")
    0
"""

from __future__ import annotations

import logging
import sys

__all__ = ["PREFIX", "notice"]

#: What starts each line written to the stream.
PREFIX = "[dask-condordag] "


def notice(logger: logging.Logger, msg: str, *, progress: bool | None = None,
           stream=None) -> None:
    """Log ``msg`` at INFO on ``logger``; unless ``progress`` is False also
    write it, with :data:`PREFIX`, to ``stream`` (``sys.stderr`` by default)."""
    logger.info("%s", msg)
    if progress is not False:
        print(PREFIX + msg, file=stream if stream is not None else sys.stderr, flush=True)
