"""The results side of a :class:`~dask_condordag.Workflow`: the values of the
requested keys, the value of one task, the error reports of the failed tasks.

Data
    In: the workflow directory's ``outputs.pkl`` (``names.OUTPUTS``: which
    result files, or inline values, make up each requested key, and how to
    repack them), the result files and error reports the worker shim wrote
    (``names.result_file``), the manifest's nodes (their tasks and outputs).
    Out: the values; the failed task's own exception
    (``results.remote_exception``); :class:`ResultMissingError` for a result
    not there yet.

Policy
    * Every file is verified before it is unpickled (``results.read_result``;
      a damaged one raises ``CorruptResultError``), ``outputs.pkl`` included,
      and read once per call.
    * A failure in a node of several tasks is in each of its outputs:
      reported once, with what finished before it kept
      (``results.keep_finished``) and the key of the task that failed.

Example::

    >>> wf = Workflow.open("mytest")          # doctest: +SKIP
    >>> wf.result()                           # what dask.compute returns  # doctest: +SKIP
    10
    >>> wf.value("inc-1")                     # one task, by key or task name  # doctest: +SKIP
    2
"""

from __future__ import annotations

from pathlib import Path

from . import names
from .exceptions import ResultMissingError, WorkflowError
from .results import is_error, is_ok, keep_finished, read_error, read_result, remote_exception

__all__ = ["WorkflowResults"]


class WorkflowResults:
    """:class:`~dask_condordag.Workflow`'s methods that read results back. A
    base class of ``Workflow``, whose ``path``, ``dag_path``, ``nodes`` and
    ``logs()`` it uses."""

    def values(self) -> tuple:
        """The raw values of the requested keys, in order (no repacking)."""
        return self._values(self._outputs())

    def result(self):
        """What ``dask.compute`` would have returned for what was written.

        Raises the failed task's exception (original type, remote traceback in
        the message) if the workflow failed, or ResultMissingError if it has
        not finished.
        """
        stored = self._outputs()
        values = self._values(stored)
        repack = stored.get("repack")
        return repack(values) if repack is not None else values

    def value(self, what):
        """The value of one task, given by its key (as the manifest shows it,
        ``repr(key)``, or a string key itself) or its task name: also a task
        inside a node of several tasks, when its result was written (it is
        read outside its node or requested, or it was kept when a later task
        of its node failed). Raises the task's exception if it failed, and
        ResultMissingError when it has no result."""
        task = self._task_named(what)
        file = self.path / names.result_file(task)
        if is_ok(file):
            return read_result(file, key=what)
        node = next(n for n, info in self.nodes.items() if task in info["tasks"])
        for report in self._task_errors():
            if report.get("task") == task:
                raise remote_exception(report, key=report.get("key"), logs=report["logs"])
        raise ResultMissingError(
            f"task {task} (key {self.nodes[node]['tasks'][task]}) has no result in "
            f"{self.path}: its node {node} has not run, or the task ran inside it and "
            "only the values read outside the node, requested, or kept when a later "
            "task failed are written")

    def _outputs(self) -> dict:
        p = self.path / names.OUTPUTS
        try:
            return read_result(p)  # sealed like a result: verified before unpickling
        except OSError as e:
            raise WorkflowError(f"cannot read {p}: {e}") from e

    def _values(self, stored: dict) -> tuple:
        values = []
        for key, kind, files, value, as_list in stored["outputs"]:
            if kind == "inline":
                values.append(value)
                continue
            got = []
            for f in files:
                file = self.path / f
                if is_error(file) or not file.exists():
                    self._raise_for(key, file)
                got.append(read_result(file, key=key))  # verified; damaged: CorruptResultError
            values.append(got if as_list else got[0])
        return tuple(values)

    def _task_named(self, what) -> str:
        wanted = {what, repr(what)} if isinstance(what, str) else {repr(what)}
        hits = {t for info in self.nodes.values() for t, k in info["tasks"].items()
                if t in wanted or k in wanted}
        if len(hits) != 1:
            raise WorkflowError(
                f"{what!r} {'matches several tasks' if hits else 'is not a task or key'} "
                f"of the workflow at {self.path} (see {self.path / names.MANIFEST})")
        return hits.pop()

    def _raise_for(self, key, file: Path):
        if is_error(file):
            report = read_error(file)
            node = report.get("node") or ""
            keep_finished(self.path, report)  # what finished before the failure
            if report.get("task") and names.result_file(report["task"]) not in str(file):
                key = report.get("key")  # another task of its node failed: that one's key
            raise remote_exception(report, key=key, logs=self.logs(node, report.get("proc")))
        errors = self._task_errors()
        if errors:
            first = errors[0]
            raise remote_exception(first, key=first.get("key"), logs=first["logs"])
        raise ResultMissingError(
            f"the result of key {key!r} ({file}) is not there yet: the workflow at "
            f"{self.path} has not finished. Run it (dask-condordag run {self.path}, "
            f"or condor_submit_dag {self.dag_path.name} in that directory) and try again"
        )

    def _task_errors(self) -> list[dict]:
        """Error reports of the failed tasks, in the DAG's order, each with
        ``logs`` (paths of the job's stdout/stderr) added."""
        out = []
        seen = set()
        for node, info in self.nodes.items():
            for task, files in info["outputs"].items():
                key = info["tasks"].get(task)
                p = next((self.path / f for f in files if is_error(self.path / f)), None)
                if p is not None:
                    report = read_error(p)
                    # one failure in a node of several outputs is in each of them
                    once = (node, report.get("proc"), report.get("task"), report.get("time"),
                            report.get("message"))
                    if once in seen:
                        continue
                    seen.add(once)
                    if len(info["tasks"]) > 1:
                        keep_finished(self.path, report)  # what finished before the failure
                    if report.get("key") is None:  # the process died: the output's key
                        report["key"] = key
                    report["logs"] = [str(x) for x in self.logs(node, report.get("proc"))]
                    report["file"] = str(p)
                    report.setdefault("kind", "error")
                    out.append(report)
        return out
