"""The :class:`Workflow` handle: one workflow directory, usable from any process.

    >>> wf = Workflow.open("mytest")          # doctest: +SKIP
    >>> wf.run()                              # the local runner  # doctest: +SKIP
    >>> wf.result()                           # doctest: +SKIP
    10
"""

from __future__ import annotations

import pickle
from pathlib import Path

from . import names
from .exceptions import ResultMissingError, WorkflowError
from .results import is_error, is_ok, read_error, read_result, remote_exception
from .write import read_manifest

__all__ = ["Workflow"]


class Workflow:
    """A written workflow directory: run it, look at it, load its results."""

    def __init__(self, path, manifest: dict | None = None):
        self.path = Path(path).absolute()
        self.manifest = manifest if manifest is not None else read_manifest(self.path)

    @classmethod
    def open(cls, path) -> "Workflow":
        """Open the workflow written at ``path`` (raises WorkflowError if it is not one)."""
        return cls(path)

    def __repr__(self) -> str:
        return f"Workflow({str(self.path)!r}, name={self.name!r}, nodes={len(self.nodes)})"

    # -- what it is --------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def dag_path(self) -> Path:
        return self.path / self.manifest["dag"]

    @property
    def nodes(self) -> dict:
        return self.manifest["nodes"]

    def logs(self, node: str) -> tuple[Path, Path]:
        out, err = names.log_files(node)
        return self.path / out, self.path / err

    # -- running -----------------------------------------------------------
    def run(self, **kwargs):
        """Run the workflow here with the local runner (see ``dask_condordag.local.run``)."""
        from .local import run

        return run(self.path, **kwargs)

    # -- state ---------------------------------------------------------------
    def status(self) -> dict:
        """Counts of nodes ``done``, ``failed`` and ``pending`` (from the result files)."""
        done = failed = 0
        for info in self.nodes.values():
            files = [self.path / f for fs in info["outputs"].values() for f in fs]
            if files and all(is_ok(f) for f in files):
                done += 1
            elif any(is_error(f) for f in files):
                failed += 1
        return {"total": len(self.nodes), "done": done, "failed": failed,
                "pending": len(self.nodes) - done - failed}

    def errors(self) -> list[dict]:
        """Error reports of the failed tasks, in the DAG's order, each with
        ``logs`` (paths of the job's stdout/stderr) added."""
        out = []
        for node, info in self.nodes.items():
            for task, files in info["outputs"].items():
                key = info["tasks"].get(task)
                p = next((self.path / f for f in files if is_error(self.path / f)), None)
                if p is not None:
                    report = read_error(p)
                    report.setdefault("key", key)
                    report["logs"] = [str(x) for x in self.logs(node)]
                    report["file"] = str(p)
                    out.append(report)
        return out

    # -- results -------------------------------------------------------------
    def _outputs(self) -> dict:
        p = self.path / names.OUTPUTS
        try:
            with open(p, "rb") as f:
                return pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            raise WorkflowError(f"cannot read {p}: {e}") from e

    def values(self) -> tuple:
        """The raw values of the requested keys, in order (no repacking)."""
        stored = self._outputs()
        values = []
        for key, kind, files, value, as_list in stored["outputs"]:
            if kind == "inline":
                values.append(value)
                continue
            got = []
            for f in files:
                file = self.path / f
                if not is_ok(file):
                    self._raise_for(key, file)
                got.append(read_result(file))
            values.append(got if as_list else got[0])
        return tuple(values)

    def result(self):
        """What ``dask.compute`` would have returned for what was written.

        Raises the failed task's exception (original type, remote traceback in
        the message) if the workflow failed, or ResultMissingError if it has
        not finished.
        """
        stored = self._outputs()
        values = self.values()
        repack = stored.get("repack")
        return repack(values) if repack is not None else values

    def _raise_for(self, key, file: Path):
        if is_error(file):
            report = read_error(file)
            node = report.get("node") or ""
            raise remote_exception(report, key=key, logs=self.logs(node))
        errors = self.errors()
        if errors:
            first = errors[0]
            raise remote_exception(first, key=first.get("key"), logs=first["logs"])
        raise ResultMissingError(
            f"the result of key {key!r} ({file}) is not there yet: the workflow at "
            f"{self.path} has not finished. Run it (dask-condordag run {self.path}, "
            f"or condor_submit_dag {self.dag_path.name} in that directory) and try again"
        )
