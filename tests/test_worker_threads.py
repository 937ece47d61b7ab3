"""A node whose payload asks for ``"threads": n`` runs its tasks on up to n
threads (issue 12: a node may request several cores), each once the tasks it
reads are done, the first ready in list order first, with the per-task
semantics of a node run one task after the other."""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from dask import delayed

from dask_condordag import names
from dask_condordag.results import read_error
from dask_condordag.worker_files import header_seconds
from dask_condordag.worker_tasks import CALL, LIT, REF, run_tasks, threads_of

from .payloads import edit_payload
from .test_grouped_semantics import runs, step, step_bad, write_merged

WAIT = 10.0  # seconds a test task waits for another before it gives up


def slow_step(x, tag, log, seconds):
    time.sleep(seconds)
    return step(x, tag, log)


def meet(me, other):
    """Say ``me`` has started, then wait for ``other`` to have started: only
    tasks that run at the same time both return."""
    Path(me).touch()
    deadline = time.monotonic() + WAIT
    while not os.path.exists(other):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} did not start while {me} ran")
        time.sleep(0.01)
    return 1


def with_threads(n):
    """An edit of a payload (tests/payloads.edit_payload): ``"threads": n``
    in its header, as the planner writes it."""
    def edit(data):
        head, rest = data[len(names.PAYLOAD_MAGIC):].split(b"\n", 1)
        meta = json.loads(head)
        meta["threads"] = n
        return names.PAYLOAD_MAGIC + json.dumps(meta).encode() + b"\n" + rest
    return edit


# -- the order, on the scheduler alone -------------------------------------------------


class Recorder:
    """An ``execute`` for run_tasks that evaluates nothing: it records when
    each task starts and ends, and runs ``hooks[task]()`` in between."""

    def __init__(self, hooks=(), fail=()):
        self.hooks, self.fail = dict(hooks), set(fail)
        self.lock = threading.Lock()
        self.starts, self.ends, self.timeline = [], [], []
        self.events = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def __call__(self, task, expr):
        with self.lock:
            self.starts.append(task)
            self.timeline.append("start " + task)
        self.event("start " + task).set()
        if task in self.hooks:
            self.hooks[task]()
        with self.lock:
            self.ends.append(task)
            self.timeline.append("end " + task)
        self.event("end " + task).set()
        return (ValueError(f"{task} failed"), "running") if task in self.fail else None

    def wait(self, what):
        assert self.event(what).wait(WAIT), f"no {what} within {WAIT} s"


def reads(*names_):
    return (CALL, list, tuple((REF, n) for n in names_), ())


def test_one_thread_runs_the_tasks_in_list_order():
    tasks = [("c", (LIT, 1)), ("a", reads("c")), ("b", (LIT, 2)), ("d", reads("a", "b"))]
    rec = Recorder()
    assert run_tasks(tasks, rec) == (["c", "a", "b", "d"], None)
    assert rec.starts == ["c", "a", "b", "d"]


def test_a_task_starts_only_when_the_tasks_it_reads_are_done():
    # a runs until c has finished; b reads a and would have a free thread
    # all that time: it must still wait for a
    rec = Recorder(hooks={"a": lambda: rec.wait("end c")})
    tasks = [("a", (LIT, 1)), ("b", reads("a")), ("c", (LIT, 3))]
    done, failure = run_tasks(tasks, rec, threads=3)
    assert failure is None and done == ["c", "a", "b"]
    t = rec.timeline
    assert t.index("start b") > t.index("end a") > t.index("end c")


def test_ready_tasks_start_in_list_order():
    # a and c start; when a ends, b (read a, listed before d) takes the free
    # thread although d was ready first; c ends only once b has started
    rec = Recorder(hooks={"c": lambda: rec.wait("start b")})
    tasks = [("a", (LIT, 1)), ("b", reads("a")), ("c", (LIT, 3)), ("d", (LIT, 4))]
    done, failure = run_tasks(tasks, rec, threads=2)
    assert failure is None and sorted(done) == ["a", "b", "c", "d"]
    assert sorted(rec.starts[:2]) == ["a", "c"] and rec.starts[2:] == ["b", "d"]


def test_after_a_failure_nothing_starts_and_the_running_tasks_finish():
    later = []
    rec = Recorder(hooks={"p": lambda: rec.wait("end bad"),
                          "q": lambda: rec.wait("end bad")},
                   fail={"bad", "q"})
    tasks = [("p", (LIT, 1)), ("bad", (LIT, 2)), ("q", (LIT, 3)), ("r", reads("p")),
             ("s", (LIT, 5))]
    done, failure = run_tasks(tasks, rec, threads=3,
                              on_failure=lambda t, e, stage: later.append((t, str(e))))
    assert done == ["p"] and failure[0] == "bad" and str(failure[1]) == "bad failed"
    assert failure[2] == "running"
    assert sorted(rec.starts) == ["bad", "p", "q"]  # r and s never started
    assert later == [("q", "q failed")]  # the first failure is the one reported


def test_threads_in_the_payload_header():
    assert threads_of({}) == 1 and threads_of({"threads": 4}) == 4
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match=r"threads=.*whole number >= 1"):
            threads_of({"node": "n", "threads": bad})


def test_tasks_that_read_each_other_in_a_cycle_are_refused():
    with pytest.raises(RuntimeError, match="cycle"):
        run_tasks([("a", reads("b")), ("b", reads("a"))], Recorder(), threads=2)


# -- the shim, in a job of the local runner ------------------------------------------


def test_a_node_with_threads_runs_its_tasks_at_the_same_time(tmp_path):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    a = delayed(meet)(str(tmp_path / "a"), str(tmp_path / "b"), dask_key_name="ma")
    b = delayed(meet)(str(tmp_path / "b"), str(tmp_path / "a"), dask_key_name="mb")
    # reads a task that sleeps: fails (KeyError) if it starts before it is done
    slow = delayed(slow_step)(0, "slow", log, 0.3, dask_key_name="slow")
    after = delayed(step)(slow, "after", log, dask_key_name="after")
    w = write_merged([a, b, after], wf)
    (node,) = w.nodes
    edit_payload(w, node, with_threads(3))
    assert w.run(progress=False).ok, w.errors()
    assert w.result() == (1, 1, 2)
    assert runs(log) == {"slow": 1, "after": 1}
    for (path,) in w.nodes[node]["outputs"].values():  # each with its own wall time
        head = (Path(wf) / path).read_bytes().split(b"\n", 1)[0]
        assert header_seconds(head) is not None


def test_a_node_without_threads_runs_one_task_at_a_time(tmp_path):
    a = delayed(meet)(str(tmp_path / "a"), str(tmp_path / "b"), dask_key_name="ma")
    b = delayed(meet)(str(tmp_path / "b"), str(tmp_path / "a"), dask_key_name="mb")
    w = write_merged([a, b], str(tmp_path / "wf"))
    (node,) = w.nodes
    edit_payload(w, node, with_threads(1))
    assert not w.run(progress=False).ok
    (err,) = w.errors()
    assert err["exc_type"] == "builtins.TimeoutError"


def test_a_failure_midway_with_three_threads(tmp_path):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")

    def graph(bad):
        p = delayed(slow_step)(0, "p", log, 1.0, dask_key_name="p")
        q = delayed(slow_step)(0, "q", log, 1.0, dask_key_name="q")
        f = delayed(step_bad if bad else step)(0, "f", log, dask_key_name="f")
        r = delayed(step)(p, "r", log, dask_key_name="r")
        s = delayed(lambda x, y: x + y)(q, f, dask_key_name="s")
        return [q, r, s]

    w = write_merged(graph(bad=True), wf)
    (node,) = w.nodes
    edit_payload(w, node, with_threads(3))
    assert not w.run(progress=False).ok
    # p, q and f started together; f failed at once: r and s never started,
    # p and q ran to the end
    assert runs(log) == {"p": 1, "q": 1, "f": 1}
    (err,) = w.errors()
    assert err["key"] == "'f'" and "bad step f" in err["message"]
    assert "in step_bad" in err["traceback"]
    outputs = w.nodes[node]["outputs"]
    q_task = next(t for t in outputs if t.startswith("q_"))
    r_task = next(t for t in outputs if t.startswith("r_"))
    assert w.value("q") == 1  # finished after the failure: written as it finished
    report = read_error(Path(wf) / outputs[r_task][0])
    assert [t[:2] for t in report["finished"]] == ["p_"]  # r did not run and reads p
    assert w.value("p") == 1  # kept, as its own result file
    assert q_task not in report["finished"]  # an output: written already

    w = write_merged(graph(bad=False), wf)  # the fix: f and s get new names
    assert w.run(progress=False).ok
    assert w.result() == (1, 2, 2)
    assert runs(log) == {"p": 1, "q": 1, "f": 2, "r": 1}


@pytest.mark.condor
@pytest.mark.skipif(shutil.which("condor_submit_dag") is None,
                    reason="needs HTCondor (condor_submit_dag)")
def test_a_node_with_threads_on_the_pool(tmp_path):
    # ``../shared/htcondor/pool test -m condor -k worker``: the job transfers
    # the shim's files, runs two tasks at the same time and the dependent
    # task only after the task it reads
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    a = delayed(meet)(str(tmp_path / "a"), str(tmp_path / "b"), dask_key_name="ma")
    b = delayed(meet)(str(tmp_path / "b"), str(tmp_path / "a"), dask_key_name="mb")
    slow = delayed(slow_step)(0, "slow", log, 0.3, dask_key_name="slow")
    after = delayed(step)(slow, "after", log, dask_key_name="after")
    w = write_merged([a, b, after], wf)
    (node,) = w.nodes
    edit_payload(w, node, with_threads(3))
    w.submit(preflight=False, progress=False)
    w.wait(timeout=300, poll=0.5, progress=False)
    assert w.result() == (1, 1, 2)
    assert runs(log) == {"slow": 1, "after": 1}
    assert "dask_condordag_worker_tasks.py" in w.logs(node)[1].read_text()  # the listing
