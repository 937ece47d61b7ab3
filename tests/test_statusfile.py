"""The node status file has one owner: ``statusfile.py`` defines its codes,
writes it for the local runner and reads it for ``condor``, ``workflow`` and
``follow``; what the runner writes reads back as DAGMan's own file does."""

from __future__ import annotations

import ast
from pathlib import Path

import dask_condordag
from dask_condordag import condor, local, statusfile
from dask_condordag.local import state

from .test_local_dagman import make

PACKAGE = Path(dask_condordag.__file__).parent
CODES = {"STATUS_NOT_READY", "STATUS_READY", "STATUS_PRERUN", "STATUS_SUBMITTED",
         "STATUS_POSTRUN", "STATUS_DONE", "STATUS_ERROR", "STATUS_FUTILE", "STATUS_NAMES",
         "STATUS_WORDS", "DAG_STATUS_OK", "DAG_STATUS_ERROR", "DAG_STATUS_NODE_FAILED",
         "DAG_STATUS_ABORT", "DAG_STATUS_RM"}


def _assigned(path: Path) -> set:
    """The module-level names ``path`` assigns (tuple targets unpacked)."""
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out.add(n.id)
    return out


def test_status_codes_are_defined_once():
    where = {p.relative_to(PACKAGE).as_posix(): _assigned(p) & CODES
             for p in sorted(PACKAGE.rglob("*.py"))}
    assert where.pop("statusfile.py") == CODES
    assert {p: names for p, names in where.items() if names} == {}
    assert condor.STATUS_ERROR is state.STATUS_ERROR is statusfile.STATUS_ERROR == 6
    assert condor.DAG_STATUS_RM == 4 and state.DAG_STATUS_ABORT == 3


def test_what_the_local_runner_writes_reads_back(tmp_path):
    wd, _ = make(tmp_path, """\
        NODE_STATUS_FILE w.status 30
        JOB a job.sub
        JOB bad job.sub
        VARS bad code="2"
        JOB futile job.sub
        JOB pre job.sub DONE
        PARENT bad CHILD futile
    """)
    local.run(wd, max_workers=1)
    st = statusfile.read_status_file(wd / "w.status")
    assert st.finished and not st.ok and st.status == statusfile.STATUS_ERROR
    assert (st.total, st.done, st.failed, st.futile) == (4, 2, 1, 1)
    assert {n: s.word for n, s in st.nodes.items()} == {
        "a": "done", "bad": "failed", "futile": "futile", "pre": "done"}
    assert list(st.failed_nodes()) == ["bad"]
    assert st.nodes["pre"].details == "User defined as DONE"
    assert st.next_update == 0
    # condor.py reads through the same function
    assert condor.read_status_file is statusfile.read_status_file
