"""``dask_condordag.local.simulate``: the DAGMan state machine against a
simulated clock. Its makespans are checked by hand; its order of events is
checked against the real runner's jobstate log on the same small DAGs."""

import sys
from pathlib import Path

import pytest
from dask import delayed

from dask_condordag import dagfile, local
from dask_condordag.graph import read_graph
from dask_condordag.local.files import dag_path
from dask_condordag.plan import make_plan

from .helpers import inc
from .test_local_dagman import make, submit_text


def dag(text):
    return dagfile.parse_dag(text)


def test_a_chain_pays_the_latency_at_every_level():
    s = local.simulate(dag("JOB a x.sub\nJOB b x.sub\nJOB c x.sub\n"
                           "PARENT a CHILD b\nPARENT b CHILD c\n"),
                       slots=4, job_latency=2.0, durations={"a": 3.0, "b": 1.0, "c": 1.0})
    assert s.makespan == 11.0
    assert [(t, n) for t, n, e, _ in s.events if e == "EXECUTE"] == [
        (0.0, "a"), (5.0, "b"), (8.0, "c")]
    assert s.done == {"a", "b", "c"} and s.exit_code == 0 and not s.failed


def test_a_wide_map_is_bounded_by_slots():
    text = "".join(f"JOB m{i} x.sub\n" for i in range(10))
    s = local.simulate(dag(text), slots=4, job_latency=0.5, durations=1.0)
    assert s.makespan == 3 * 1.5  # ceil(10 / 4) waves of latency + work


def test_simulate_reads_queue_counts_from_submit_files(tmp_path):
    wd, _ = make(tmp_path, "JOB many three.sub\nJOB one job.sub\n",
                 submits={"three.sub": submit_text(3)})
    s = local.simulate(wd, slots=2, durations=1.0)
    starts = [(t, n, cid) for t, n, e, cid in s.events if e == "EXECUTE"]
    assert starts == [(0.0, "many", "1.0"), (0.0, "many", "1.1"),
                      (1.0, "many", "1.2"), (1.0, "one", "2.0")]
    assert s.makespan == 2.0


def test_a_proc_holds_the_cores_it_requests(tmp_path):
    # one partitionable slot of 4 cores: two 3-core jobs cannot run at once,
    # a 1-core job fits beside one of them (the negotiator matches what fits),
    # and a 16-core request holds the whole slot instead of never running
    wd, _ = make(tmp_path, "JOB big1 three.sub\nJOB big2 three.sub\nJOB small job.sub\n"
                 "JOB huge huge.sub\nPARENT big1 big2 small CHILD huge\n",
                 submits={"three.sub": submit_text(extra="request_cpus = 3"),
                          "huge.sub": submit_text(extra="request_cpus = 16")})
    s = local.simulate(wd, slots=4, durations=1.0)
    starts = [(t, n) for t, n, e, _ in s.events if e == "EXECUTE"]
    assert starts == [(0.0, "big1"), (0.0, "small"), (1.0, "big2"), (2.0, "huge")]
    assert s.makespan == 3.0
    # the same DAG as a parsed DagFile with describe= (plan_report's path)
    parsed, _ = local.files.load_dag(dag_path(wd))
    again = local.simulate(parsed, slots=4, durations=1.0,
                           describe=local.launch.Submits(wd, parsed).describe)
    assert again.events == s.events
    with pytest.raises(TypeError, match="describe="):
        local.simulate(wd, slots=4, describe=lambda node, macros: (1, 0))


def test_failures_retries_and_abort():
    d = dag("JOB a x.sub\nRETRY a 2\nJOB b x.sub\nPARENT a CHILD b\n"
            "JOB c x.sub\nABORT-DAG-ON c 9 RETURN 4\n")
    s = local.simulate(d, slots=1, durations={"a": 1.0, "c": 5.0}, exit_codes={"a": [1, 0]})
    assert [n for _, n, e, _ in s.events if e == "EXECUTE"] == ["a", "c", "a", "b"]
    assert s.done == {"a", "b", "c"} and s.makespan == 7.0
    s = local.simulate(d, slots=2, durations={"a": 1.0, "c": 5.0}, exit_codes={"c": 9, "a": 1})
    assert s.aborted and s.exit_code == 4 and s.makespan == 5.0


def test_scripts_take_their_time():
    d = dag("JOB a x.sub\nSCRIPT PRE a pre.sh\nSCRIPT POST a post.sh\n")
    s = local.simulate(d, durations=1.0, script_seconds=0.25)
    assert s.makespan == 1.5
    assert [e for _, _, e, _ in s.events] == [
        "PRE_SCRIPT_STARTED", "PRE_SCRIPT_SUCCESS", "SUBMIT", "EXECUTE", "JOB_TERMINATED",
        "JOB_SUCCESS", "POST_SCRIPT_STARTED", "POST_SCRIPT_TERMINATED", "POST_SCRIPT_SUCCESS"]


def test_a_plan_before_it_is_written():
    leaves = [delayed(inc)(i, dask_key_name=f"leaf-{i}") for i in range(6)]
    total = delayed(sum)(leaves, dask_key_name="total")
    plan = make_plan(read_graph(total.__dask_graph__(), [total.key]), name="demo", group="none")
    s = local.simulate(plan, slots=3, job_latency=1.0, durations=2.0)
    assert len(s.done) == len(plan.nodes) == 7
    assert s.makespan == 2 * 3.0 + 3.0  # two waves of leaves, then the sum


# --------------------------------------------------------------------------- vs the real runner

def _real_events(wd):
    """(node, event, id) of the jobstate log of a real run."""
    log = (wd / "w.jobstate.log").read_text().splitlines()
    return [tuple(line.split()[1:4]) for line in log if "INTERNAL" not in line]


def _simulated_events(s):
    return [(n, e, cid) for _, n, e, cid in s.events]


def test_same_order_as_the_real_runner_with_one_slot(tmp_path):
    wd, _ = make(tmp_path, """\
        JOBSTATE_LOG w.jobstate.log
        JOB a job.sub
        JOB b job.sub
        PRIORITY b 5
        JOB c job.sub
        PRIORITY c 10
        JOB r job.sub
        VARS r code="3"
        RETRY r 1
        PRIORITY r 7
        JOB kid job.sub
        PARENT r CHILD kid
        JOB e job.sub
        PRIORITY e -1
        JOB many three.sub
        PRIORITY many 2
        JOB f job.sub
        PRIORITY f 20
        PARENT e CHILD f
    """, submits={"three.sub": submit_text(3)})
    report = local.run(wd, max_workers=1)
    assert report.failed.keys() == {"r"}
    real = _real_events(wd)
    (wd / "w.jobstate.log").unlink()
    for rescue in wd.glob("w.dag.rescue*"):
        rescue.unlink()
    s = local.simulate(wd, slots=1, durations=0.1, exit_codes={"r": 3})
    assert _simulated_events(s) == real
    assert s.failed == report.failed and s.done == report.done


def test_same_order_as_the_real_runner_with_two_slots(tmp_path):
    wd, _ = make(tmp_path, """\
        JOBSTATE_LOG w.jobstate.log
        JOB long job.sub
        VARS long secs="3"
        JOB short job.sub
        JOB next job.sub
        JOB after job.sub
        PARENT short CHILD next
        PARENT long CHILD after
    """)
    report = local.run(wd, max_workers=2)
    assert report.ok
    real = _real_events(wd)
    (wd / "w.jobstate.log").unlink()
    s = local.simulate(dag_path(wd), slots=2, durations={"long": 3.0, "short": 0.1,
                                                         "next": 0.1, "after": 0.1})
    assert _simulated_events(s) == real
    assert s.makespan == pytest.approx(3.1)


# --------------------------------------------------------------------------- cost

def _lines_run(fn) -> int:
    """How many lines of the local package's code ``fn()`` executes: its
    work, counted without a clock (so a loaded machine cannot flake it)."""
    pkg = str(Path(local.__file__).parent)
    count = 0

    def line(frame, event, arg):
        nonlocal count
        count += event == "line"
        return line

    sys.settrace(lambda frame, event, arg: line if frame.f_code.co_filename.startswith(pkg)
                 else None)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def _fan_in(n: int, post: bool):
    """``n`` leaves (each with a POST script when ``post``) and one node
    that is the child of them all, as a plan's final sum is."""
    leaves = [f"l{i}" for i in range(n)]
    text = "".join(f"JOB {x} x.sub\n" + (f"SCRIPT POST {x} post.sh\n" if post else "")
                   for x in leaves)
    return dag(text + "JOB total x.sub\nPARENT " + " ".join(leaves) + " CHILD total\n")


@pytest.mark.parametrize("slots", [1, 10_000])
@pytest.mark.parametrize("post", [False, True])
def test_the_machines_work_grows_linearly_with_the_dag(slots, post):
    # A node done looked at all the parents of each of its children, and
    # active() at every node once per tick: twice the nodes cost four times
    # the work (a 5,000-node plan_report took seconds). Twice now: twice.
    small, big = (_lines_run(lambda n=n: local.simulate(_fan_in(n, post), slots=slots,
                                                       durations=1.0, job_latency=0.5))
                  for n in (200, 400))
    assert big / small < 2.3, (small, big)
