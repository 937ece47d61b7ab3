"""Messages (issue 11, part 4): every message of the client side goes to a
``dask_condordag`` logger; notices also go to stderr unless ``progress=False``.
A user in a notebook or a service can route or silence all of them."""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import condor
from dask_condordag.messages import notice

from . import fake_condor
from .helpers import add, inc

# about one task per node (names, counts, per-node figures): conftest.py
pytestmark = pytest.mark.usefixtures("one_node_per_task")


class _Keep(logging.Handler):
    """A handler of the user's: keeps the records it is given."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def routed():
    """A handler on the package's logger, as a service would add one."""
    log = logging.getLogger("dask_condordag")
    keep, level = _Keep(), log.level
    log.addHandler(keep)
    log.setLevel(logging.INFO)
    yield keep
    log.removeHandler(keep)
    log.setLevel(level)


def _texts(records, name=None) -> list:
    return [r.getMessage() for r in records if name is None or r.name == name]


def test_notice_logs_and_prints_unless_progress_false(routed):
    log = logging.getLogger("dask_condordag.demo")
    out = io.StringIO()
    notice(log, "one", stream=out)
    notice(log, "two", progress=True, stream=out)
    notice(log, "three", progress=False, stream=out)
    assert out.getvalue() == "[dask-condordag] one\n[dask-condordag] two\n"
    assert _texts(routed.records) == ["one", "two", "three"]
    assert {r.levelno for r in routed.records} == {logging.INFO}


def test_quiet_local_compute_prints_nothing_and_logs_everything(tmp_path, monkeypatch,
                                                                 capfd, routed):
    monkeypatch.setattr(condor, "_announced", set())  # the run='auto' notice comes again
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no condor_submit_dag
    total = delayed(add)(delayed(inc)(1), 2)
    assert total.compute(scheduler="condordag", progress=False) == 4
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    texts = _texts(routed.records)
    assert any("run='auto'" in t and "local runner" in t for t in
               _texts(routed.records, "dask_condordag.condor")), texts
    where = dask_condordag.last_workflow().path
    assert f"workflow written to {where}" in _texts(routed.records, "dask_condordag.scheduler")
    assert any("2 of 2 nodes done" in t
               for t in _texts(routed.records, "dask_condordag.local.runner")), texts


def test_default_progress_still_says_where_and_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(condor, "_announced", set())
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert delayed(inc)(1).compute(scheduler="condordag") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[dask-condordag] run='auto':")
    assert err[1] == f"[dask-condordag] workflow written to {dask_condordag.last_workflow().path}"


def test_warnings_reach_the_users_handler_not_the_progress_stream(tmp_path, routed):
    # a submit command the local runner cannot honour: a warning on the logger
    wf = dask_condordag.write(delayed(inc)(1, dask_key_name="one"), path=tmp_path / "wf")
    (sub,) = wf.path.rglob("*.sub")
    sub.write_text(sub.read_text().replace("\nqueue", "\nrequest_gpus = 1\nqueue"))
    out = io.StringIO()
    report = dask_condordag.local.run(wf.path, stream=out, progress=False)
    assert report.ok and out.getvalue() == ""
    warned = [r for r in routed.records if r.levelno == logging.WARNING]
    assert [r.name for r in warned] == ["dask_condordag.local.runner"]
    assert "request_gpus" in warned[0].getMessage()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    state = fake_condor.install(tmp_path, monkeypatch)
    yield state
    fake_condor.stop_all(state)


def test_quiet_condor_compute_prints_nothing(fake, tmp_path, capsys, routed):
    total = delayed(add)(delayed(inc)(1), delayed(inc)(2))
    assert total.compute(scheduler="condordag", run="condor", path=tmp_path / "wf",
                         poll_interval=0.1, node_status_interval=1, progress=False) == 5
    assert capsys.readouterr().err == ""
    texts = _texts(routed.records, "dask_condordag.workflow_pool")
    assert "wf: submitted wf.dag as DAGMan job 1001" in texts
    assert any("3 done, 0 idle, 0 running, 0 held, 0 failed of 3 nodes" in t for t in texts)
    # the workflow is under /tmp: a warning, on the logger
    assert any(r.levelno == logging.WARNING and "is under /tmp" in r.getMessage()
               for r in routed.records)


def test_fresh_interpreter_quiet_and_routed(tmp_path):
    """Outside pytest (no handler anywhere): progress=False writes nothing on
    stderr; a handler the user adds gets the notices."""
    code = (
        "import io, logging, dask, dask_condordag\n"
        "print(dask.delayed(sum)([1, 2]).compute(scheduler='condordag', progress=False))\n"
        "buf = io.StringIO()\n"
        "h = logging.StreamHandler(buf)\n"
        "log = logging.getLogger('dask_condordag')\n"
        "log.addHandler(h); log.setLevel(logging.INFO)\n"
        "print(dask.delayed(sum)([1, 3]).compute(scheduler='condordag', progress=False))\n"
        "print(repr(buf.getvalue()))\n")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    first, second, routed_text = r.stdout.splitlines()[:3]
    assert (first, second) == ("3", "4")
    assert "workflow written to" in routed_text and "[dask-condordag]" not in routed_text


def test_command_line_prints_the_warnings(tmp_path):
    """``dask-condordag run``: no logging set up by anyone, so the command puts
    the library's warnings on stderr, prefixed as its own lines are."""
    wf = dask_condordag.write(delayed(inc)(1, dask_key_name="one"), path=tmp_path / "wf")
    (sub,) = wf.path.rglob("*.sub")
    sub.write_text(sub.read_text().replace("\nqueue", "\nrequest_gpus = 1\nqueue"))
    r = subprocess.run([sys.executable, "-m", "dask_condordag.cli", "run", "-q", str(wf.path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        line for line in r.stderr.splitlines() if line.startswith("[dask-condordag] ")]
    assert sum("[dask-condordag] WARNING: submit command request_gpus = 1" in line
               for line in r.stderr.splitlines()) == 1, r.stderr
