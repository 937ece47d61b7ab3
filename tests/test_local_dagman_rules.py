"""DAGMan's rules, checked on the pure state machine (``local/dagman.py``):
events in, actions out. No process starts and nothing sleeps; the DAGs are
parsed from text. (``test_local_dagman.py`` checks the same rules end to end
with real processes.)"""

import datetime
import textwrap

import pytest

from dask_condordag import dagfile
from dask_condordag.local.dagman import Dagman
from dask_condordag.local.state import (DAG_ERROR_CONDOR_JOB_ABORTED, DAG_STATUS_ABORT,
                                        DAG_STATUS_NODE_FAILED, DAG_STATUS_OK, Abort, Done,
                                        Execute, Log, Remove, RunScript, Started, WriteRescue)


def machine(text, slots=1, procs=None, priority=None, **kw):
    """A Dagman over the DAG ``text``; ``procs`` / ``priority``: what each
    node's submit description would say (default 1 proc, priority 0)."""
    dag = dagfile.parse_dag(textwrap.dedent(text))
    procs, priority = procs or {}, priority or {}
    return Dagman(dag, slots=slots, describe=lambda node, macros: (
        procs.get(node, 1), priority.get(node, 0)), **kw)


def of(kind, actions):
    return [a for a in actions if isinstance(a, kind)]


def _pick(codes, retry):
    return codes[min(retry, len(codes) - 1)]


def run_all(m, codes=None, scripts=None):
    """Drive ``m`` until it stops. Job procs and scripts end one at a time,
    first started first, with their code by try: ``codes`` node -> [codes],
    ``scripts`` (node, kind) -> [codes]; default 0. Returns every action."""
    codes, scripts = codes or {}, scripts or {}
    out, running, removed = [], [], set()

    def take(actions):
        out.extend(actions)
        for a in actions:
            if isinstance(a, Execute):
                running.append(("proc", a))
            elif isinstance(a, RunScript):
                running.append(("script", a))
            elif isinstance(a, Remove):
                removed.add((a.node, a.cluster))

    take(m.start())
    for _ in range(1000):
        take(m.tick())
        if m.aborted or not m.active():
            return out
        if not running:
            continue  # NOOP jobs end at the next tick
        what, a = running.pop(0)
        if what == "proc":
            code = None if (a.node, a.cluster) in removed else _pick(codes.get(a.node, [0]), a.retry)
            take(m.proc_exited(a.node, a.cluster, a.proc, code, "job removed" if code is None else ""))
        else:
            take(m.script_exited(a.node, a.kind, a.token,
                                 _pick(scripts.get((a.node, a.kind), [0]), a.token[0])))
        if m.aborted:
            return out
    raise AssertionError("the machine never stopped")


def logs(actions, node=None):
    return [(a.node, a.event) for a in of(Log, actions) if node is None or a.node == node]


def started(actions):
    """Node names in the order their procs started."""
    return [a.node for a in of(Execute, actions)]


# --------------------------------------------------------------------------- order


def test_parents_first_and_one_cluster_per_submission():
    m = machine("""\
        JOB a a.sub
        JOB b a.sub
        PARENT a CHILD b
    """)
    assert m.start() == []  # nothing runs before the first tick
    first = m.tick()
    (ex,) = of(Execute, first)
    assert first == [Started("a"), Log("a", "SUBMIT", "1.0", 1), Log("a", "EXECUTE", "1.0", 1),
                     Execute("a", 1, 0, ex.macros, 0)]
    after = m.proc_exited("a", 1, 0, 0)
    assert logs(after) == [("a", "JOB_TERMINATED"), ("a", "JOB_SUCCESS")]
    assert of(Done, after) == [Done("a", ("b",))]
    nxt = m.tick()
    assert [(a.node, a.cluster) for a in of(Execute, nxt)] == [("b", 2)]
    assert m.proc_exited("b", 2, 0, 0) and not m.active()
    assert m.finish() == [] and m.exit_code == 0


def test_priority_order_with_one_slot():
    m = machine("""\
        JOB a x.sub
        JOB b x.sub
        PRIORITY b 5
        JOB c x.sub
        PRIORITY c 10
        JOB d x.sub
        PRIORITY d 5
        JOB e x.sub
        PRIORITY e -1
        JOB f x.sub
        PRIORITY f 20
        PARENT e CHILD f
    """)
    # higher first, ties in file order; f's priority is its own and it waits for e
    assert started(run_all(m)) == ["c", "b", "d", "a", "e", "f"]


def test_submit_file_priority_orders_idle_procs_when_the_node_has_none():
    m = machine("""\
        JOB a x.sub
        JOB b x.sub
        JOB c x.sub
        PRIORITY c 1
    """, priority={"b": 50, "c": 99})
    # all three are submitted at once; the schedd starts b (job priority 50)
    # before c (its node PRIORITY 1 overrides the file's 99) before a (0)
    assert started(run_all(m)) == ["b", "c", "a"]


def test_dagman_macros_and_vars_of_a_node_job():
    m = machine("""\
        JOB bad x.sub
        JOB a x.sub
        JOB b x.sub
        PRIORITY b 3
        VARS b x="hello" JOB="mine"
        PARENT a CHILD b
    """)
    actions = run_all(m, codes={"bad": [1]})
    b = next(a for a in of(Execute, actions) if a.node == "b")
    assert b.macros == {"JOB": "mine", "RETRY": "0", "DAG_STATUS": "2", "FAILED_COUNT": "1",
                        "DAG_PARENT_NAMES": "a", "priority": "3", "x": "hello"}


# --------------------------------------------------------------------------- retries


def test_retry_reruns_the_node_and_counts():
    m = machine("""\
        JOB r x.sub
        RETRY r 2
        JOB s x.sub
        RETRY s 3
    """)
    actions = run_all(m, codes={"r": [3], "s": [1, 0]})
    assert [a.retry for a in of(Execute, actions) if a.node == "r"] == [0, 1, 2]
    assert [a.macros["RETRY"] for a in of(Execute, actions) if a.node == "r"] == ["0", "1", "2"]
    last = [a.cluster for a in of(Execute, actions) if a.node == "r"][-1]
    assert m.failed["r"] == f"Job proc ({last}.0.0) failed with status 3 (after 2 node retries)"
    assert m.done == {"s"} and m.retries == {"r": 2, "s": 1}
    # each try is a new cluster with its own jobstate sequence number
    seqs = [a.seq for a in of(Log, actions) if a.node == "r" and a.event == "SUBMIT"]
    assert len(set(seqs)) == 3
    assert m.finish() == [WriteRescue(("s",), ("r",))]
    assert m.exit_code == 1 and m.dag_status == DAG_STATUS_NODE_FAILED


def test_unless_exit_stops_retrying():
    m = machine("""\
        JOB u x.sub
        RETRY u 5 UNLESS-EXIT 4
        JOB kid x.sub
        PARENT u CHILD kid
    """)
    actions = run_all(m, codes={"u": [4]})
    assert started(actions) == ["u"]
    # failed at once, without DAGMan's "(after N node retries)" note
    assert m.failed == {"u": "Job proc (1.0.0) failed with status 4"}
    assert m.retries == {}
    # "Aborting further retries": DAGMan leaves the descendants as they are
    assert m.nodes["kid"].status == 0 and m.futile_count == 0


def test_unless_exit_other_code_retries():
    m = machine("""\
        JOB u x.sub
        RETRY u 2 UNLESS-EXIT 4
    """)
    run_all(m, codes={"u": [1, 4]})
    assert m.retries == {"u": 1} and list(m.failed) == ["u"]


# --------------------------------------------------------------------------- throttles


def test_maxjobs_limits_submitted_clusters_of_a_category():
    text = "\n".join([f"JOB a{i} x.sub\nCATEGORY a{i} big" for i in range(5)]
                     + ["JOB free x.sub", "MAXJOBS big 2"])
    m = machine(text, slots=10)
    m.start()
    first = m.tick()
    assert sorted(started(first)) == ["a0", "a1", "free"]
    assert m.cat_current == {"big": 2}
    m.proc_exited("a0", 1, 0, 0)
    # one left the queue, one more goes in. DAGMan returns throttled nodes to
    # the ready queue with prepend(), in the order it popped them
    # (Dag::SubmitReadyNodes), so the last deferred goes first
    assert started(m.tick()) == ["a4"]
    m.proc_exited("a1", 2, 0, 0)
    assert started(m.tick()) == ["a2"]
    m.proc_exited("a4", 4, 0, 0)
    assert started(m.tick()) == ["a3"]
    assert m.schedd.max_running_by_category == {"big": 2}


def test_maxjobs_counts_clusters_not_procs():
    m = machine("""\
        JOB many x.sub
        CATEGORY many c
        JOB other x.sub
        CATEGORY other c
        MAXJOBS c 1
    """, slots=5, procs={"many": 3})
    m.start()
    assert [(a.node, a.proc) for a in of(Execute, m.tick())] == [
        ("many", 0), ("many", 1), ("many", 2)]
    m.proc_exited("many", 1, 0, 0)
    m.proc_exited("many", 1, 1, 0)
    assert m.tick() == []  # its cluster is still in the queue
    m.proc_exited("many", 1, 2, 0)
    assert started(m.tick()) == ["other"]


def test_procs_need_slots_and_the_schedd_starts_them_by_job_id():
    m = machine("""\
        JOB many x.sub
        JOB other x.sub
    """, slots=2, procs={"many": 3})
    actions = run_all(m)
    assert [(a.node, a.cluster, a.proc) for a in of(Execute, actions)] == [
        ("many", 1, 0), ("many", 1, 1), ("many", 1, 2), ("other", 2, 0)]
    assert m.schedd.max_running_procs == 2 and m.schedd.max_running == 2


# --------------------------------------------------------------------------- clusters


def test_a_failing_proc_removes_its_cluster_and_post_sees_return():
    m = machine("""\
        JOB many x.sub
        SCRIPT POST many post.sh $RETURN $JOB_COUNT $EXIT_CODES $JOB_ABORT_COUNT $JOBID
        JOB kid x.sub
        PARENT many CHILD kid
    """, slots=3, procs={"many": 3})
    m.start()
    assert len(of(Execute, m.tick())) == 3
    out = m.proc_exited("many", 1, 1, 6)
    assert of(Remove, out) == [Remove("many", 1)]
    assert of(RunScript, out) == []  # not before every proc has left the queue
    m.proc_exited("many", 1, 0, None, "job removed")
    out = m.proc_exited("many", 1, 2, None, "job removed")
    assert logs(out) == [("many", "JOB_ABORTED"), ("many", "JOB_FAILURE"),
                         ("many", "POST_SCRIPT_STARTED")]
    (post,) = of(RunScript, out)
    assert post.argv == ("post.sh", "6", "3", "6", "2", "1.2")
    out = m.script_exited("many", "POST", post.token, 6)
    assert m.failed == {"many": "Job exited with status 6 and POST Script failed with status 6"}
    assert m.nodes["kid"].status == 7  # STATUS_FUTILE


def test_idle_procs_of_a_failed_cluster_leave_without_running():
    m = machine("JOB many x.sub\n", slots=1, procs={"many": 3})
    m.start()
    assert len(of(Execute, m.tick())) == 1
    out = m.proc_exited("many", 1, 0, 2)
    assert of(Remove, out) == []  # nothing else runs: the idle ones just leave
    assert m.failed == {"many": "Job proc (1.0.0) failed with status 2"}
    assert m.nodes["many"].aborted_procs == 2 and not m.active()


def test_a_removed_or_unfetched_job_is_dagmans_job_aborted():
    m = machine("JOB a x.sub\n")
    m.start()
    m.tick()
    out = m.proc_exited("a", 1, 0, None, "output file x was not written; ON HOLD")
    assert logs(out) == [("a", "JOB_ABORTED"), ("a", "JOB_FAILURE")]
    assert m.nodes["a"].retval == DAG_ERROR_CONDOR_JOB_ABORTED
    assert m.failed == {"a": "output file x was not written; ON HOLD"}


# --------------------------------------------------------------------------- scripts


def test_failed_pre_script_skips_job_and_post_and_counts_as_a_try():
    m = machine("""\
        JOB n x.sub
        SCRIPT PRE n pre.sh $JOB $RETRY $MAX_RETRIES
        SCRIPT POST n post.sh
        RETRY n 2
    """)
    actions = run_all(m, scripts={("n", "PRE"): [1]})
    assert [a.argv for a in of(RunScript, actions)] == [
        ("pre.sh", "n", "0", "2"), ("pre.sh", "n", "1", "2"), ("pre.sh", "n", "2", "2")]
    assert of(Execute, actions) == []
    assert m.failed == {"n": "PRE Script failed with status 1 (after 2 node retries)"}
    assert of(Started, actions) == [Started("n")]  # its tasks started once


def test_script_counts_see_the_nodes_submitted_done_and_all():
    # $QUEUED_COUNT: nodes SUBMITTED now (kept as a count, not scanned per script)
    m = machine("""\
        JOB a x.sub
        SCRIPT POST a post.sh $QUEUED_COUNT $DONE_COUNT $NODE_COUNT
        JOB b x.sub
        SCRIPT POST b post.sh $QUEUED_COUNT $DONE_COUNT $NODE_COUNT
        JOB c x.sub
        JOB d x.sub
        PARENT a CHILD d
    """, slots=2)
    m.start()
    assert len(of(Execute, m.tick())) == 2  # a and b run, c waits for a slot
    (post_a,) = of(RunScript, m.proc_exited("a", 1, 0, 0))
    assert post_a.argv == ("post.sh", "2", "0", "4")  # b and c submitted
    m.script_exited("a", "POST", post_a.token, 0)
    m.tick()  # d submitted, c takes a's slot
    (post_b,) = of(RunScript, m.proc_exited("b", 2, 0, 0))
    assert post_b.argv == ("post.sh", "2", "1", "4")  # c and d submitted, a done


def test_post_script_exit_decides():
    m = machine("""\
        JOB flip x.sub
        SCRIPT POST flip post.sh $RETURN $PRE_SCRIPT_RETURN
        JOB spoil x.sub
        SCRIPT PRE spoil pre.sh
        SCRIPT POST spoil post.sh $RETURN $PRE_SCRIPT_RETURN
        JOB kid x.sub
        PARENT flip CHILD kid
    """)
    actions = run_all(m, codes={"flip": [3]}, scripts={("spoil", "POST"): [2]})
    posts = {a.node: a.argv for a in of(RunScript, actions) if a.kind == "POST"}
    assert posts == {"flip": ("post.sh", "3", "-1"), "spoil": ("post.sh", "0", "0")}
    assert m.done == {"flip", "kid"}
    assert m.failed == {"spoil": "Job failed due to DAGMAN error 0 and POST Script failed "
                                 "with status 2"}


def test_a_script_of_an_earlier_try_is_ignored():
    m = machine("JOB n x.sub\nSCRIPT PRE n pre.sh\nRETRY n 1\n")
    (pre,) = of(RunScript, m.start())
    m.script_exited("n", "PRE", pre.token, 1)  # retried: a new PRE script
    assert m.script_exited("n", "PRE", pre.token, 0) == []
    assert m.nodes["n"].retries == 1 and m.nodes["n"].status == 2  # STATUS_PRERUN


# --------------------------------------------------------------------------- abort


def test_abort_dag_on_stops_at_once_despite_retries():
    m = machine("""\
        JOB stop x.sub
        RETRY stop 3
        ABORT-DAG-ON stop 7 RETURN 9
        JOB slow x.sub
        JOB kid x.sub
        PARENT stop CHILD kid
    """, slots=2)
    m.start()
    assert started(m.tick()) == ["stop", "slow"]
    out = m.proc_exited("stop", 1, 0, 7)
    assert of(Abort, out) == [Abort("stop", 7, 9)]
    assert m.aborted and m.exit_code == 9 and m.dag_status == DAG_STATUS_ABORT
    assert m.retries == {} and m.tick() == []  # nothing new starts
    assert m.finish() == [WriteRescue((), ("stop",))]


def test_abort_return_zero_keeps_dag_status_ok_and_post_decides():
    m = machine("""\
        JOB p x.sub
        SCRIPT POST p post.sh
        ABORT-DAG-ON p 4
        JOB a x.sub
        ABORT-DAG-ON a 4 RETURN 0
        PARENT p CHILD a
    """)
    actions = run_all(m, codes={"p": [4], "a": [4]})
    # p's job exited 4, but with a POST script only the script's exit counts
    assert "p" in m.done
    assert of(Abort, actions) == [Abort("a", 4, 0)]
    assert m.exit_code == 0 and m.dag_status == DAG_STATUS_OK


def test_abort_without_return_exits_with_the_node_value():
    m = machine("JOB a x.sub\nABORT-DAG-ON a 5\n")
    run_all(m, codes={"a": [5]})
    assert m.aborted and m.exit_code == 5 and m.dag_status == DAG_STATUS_ABORT


# --------------------------------------------------------------------------- progress


def test_done_nodes_are_skipped():
    m = machine("""\
        JOB a x.sub DONE
        JOB b x.sub
        PARENT a CHILD b
    """)
    actions = run_all(m)
    assert started(actions) == ["b"] and m.skipped == {"a"} and m.done == {"a", "b"}


def test_noop_node_runs_no_job():
    m = machine("""\
        JOB n x.sub NOOP
        JOB kid x.sub
        PARENT n CHILD kid
    """)
    actions = run_all(m)
    assert started(actions) == ["kid"]
    assert logs(actions, "n") == [("n", "SUBMIT"), ("n", "JOB_TERMINATED"), ("n", "JOB_SUCCESS")]


def test_goes_on_until_no_more_forward_progress():
    m = machine("""\
        JOB a x.sub
        JOB b x.sub
        JOB c x.sub
        JOB d x.sub
        PARENT a CHILD b
        PARENT c CHILD d
    """)
    actions = run_all(m, codes={"a": [1]})
    assert started(actions) == ["a", "c", "d"]
    assert m.done == {"c", "d"} and list(m.failed) == ["a"]
    assert m.nodes["b"].status == 7 and m.futile_count == 1
    (rescue,) = m.finish()
    assert rescue == WriteRescue(("c", "d"), ("a",)) and m.exit_code == 1


def test_fail_fast_starts_nothing_new():
    m = machine("""\
        JOB a x.sub
        JOB c x.sub
        JOB d x.sub
    """, fail_fast=True)
    actions = run_all(m, codes={"a": [1]})
    assert started(actions) == ["a"] and m.stopping and not m.active()
    assert m.nodes["c"].status == 1  # STATUS_READY, never submitted


def test_rescue_contents():
    m = machine("""\
        JOB a x.sub
        RETRY a 1
        JOB b x.sub
        JOB c x.sub DONE
        PARENT a CHILD b
    """)
    run_all(m, codes={"a": [1]})
    (rescue,) = m.finish()
    text = dagfile.render_rescue("w.dag", rescue.done, rescue.failed, len(m.nodes),
                                 datetime.datetime(2026, 1, 1), dag=m.dag)
    assert "DONE c\n" in text and "DONE a" not in text and "DONE b" not in text
    assert "RETRY a 1\n" in text
    applied = dagfile.apply_rescue(m.dag, text)
    assert {n for n, x in applied.nodes.items() if x.done} == {"c"}


@pytest.mark.parametrize("slots", [1, 3])
def test_the_same_inputs_give_the_same_actions(slots):
    text = "\n".join(f"JOB n{i} x.sub\nPRIORITY n{i} {i % 3}" for i in range(9)) + \
        "\nPARENT n0 CHILD n5 n6\nPARENT n1 CHILD n7\n"
    first = run_all(machine(text, slots=slots), codes={"n3": [1]})
    again = run_all(machine(text, slots=slots), codes={"n3": [1]})
    assert first == again


# --------------------------------------------------------------------------- submit failure
def test_a_refused_submit_fails_the_node_without_its_retries():
    # seen on HTCondor 25.14 (tests/test_pool.py): SUBMIT_FAILURE, no RETRY,
    # the rest of the DAG goes on
    from dask_condordag.local.state import DAG_ERROR_CONDOR_SUBMIT_FAILED, SubmitRefused

    def describe(node, macros):
        if node == "bad":
            raise SubmitRefused("submit description job.sub: unbalanced quotes")
        return 1, 0

    dag = dagfile.parse_dag(textwrap.dedent("""\
        JOB bad job.sub
        JOB good job.sub
        JOB kid job.sub
        RETRY bad 3
        PARENT bad CHILD kid
        """))
    m = Dagman(dag, slots=1, describe=describe)
    out = run_all(m)
    assert logs(out, "bad") == [("bad", "SUBMIT_FAILURE")]
    assert started(out) == ["good"]
    assert m.nodes["bad"].retval == DAG_ERROR_CONDOR_SUBMIT_FAILED
    assert m.failed["bad"].startswith("Job submit failed: submit description job.sub")
    assert m.retries.get("bad", 0) == 0 and m.dag_status == DAG_STATUS_NODE_FAILED
