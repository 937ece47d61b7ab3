"""group="auto": the partitions the cost model picks for the patterns of issue 12, the
rules no grouping may break, and the cost model's records."""

import random
import re
from operator import add

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import PlanError
from dask_condordag._compat import Task, TaskRef
from dask_condordag.cost import CostModel, History, node_seconds, read_history
from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan

from .helpers import inc


def total(xs):
    return sum(xs)


class KnownCosts(CostModel):
    """A cost model that takes its default seconds for a measurement: every
    task costs ``default_seconds``, as if recorded (no first-run hedge)."""

    def knows(self, name):
        return True


def plan_of(*collections, seconds=0.001, slots=4, overhead=6.0, cores=1, guessed=False,
            **kw):
    """The plan of ``collections`` under a cost model; ``cores``: cores_per_node
    (1 by default here: the one-core rules; the multi-core ones say so);
    every task takes ``seconds``, known (``guessed``: only the default, as
    on a first run without records)."""
    from dask.highlevelgraph import HighLevelGraph

    keys = []
    for c in collections:
        keys += list(dask.core.flatten(c.__dask_keys__()))
    dsk = HighLevelGraph.merge(*[c.__dask_graph__() for c in collections])
    model = (CostModel if guessed else KnownCosts)(
        job_overhead=overhead, slots=slots, default_seconds=seconds, cores_per_node=cores, **kw)
    return make_plan(read_graph(dsk, keys), name="t", group="auto", cost=model)


def node_of(plan, key_prefix):
    return {plan.task_node[t.name] for n in plan.nodes.values() for t in n.tasks
            if str(t.key).startswith(key_prefix)}


def check_valid(plan):
    """Every node's tasks come after what they read inside it; parents first."""
    seen = set()
    for node in plan.nodes.values():
        assert set(node.parents) <= seen
        inside = set()
        for t in node.tasks:
            for r in t.reads:
                if plan.task_node.get(r) == node.name:
                    assert r in inside, (node.name, t.name, r)
            inside.add(t.name)
        seen.add(node.name)


def test_cheap_graph_is_one_job():
    xs = [delayed(inc)(i) for i in range(1000)]
    plan = plan_of(delayed(total)(xs))
    assert len(plan.nodes) == 1
    (node,) = plan.nodes.values()
    assert list(node.outputs) == [node.tasks[-1].name]  # only the requested value


def test_linear_chain_is_fused_whatever_it_costs():
    x = delayed(inc)(0)
    for _ in range(9):
        x = delayed(inc)(x)
    plan = plan_of(x, seconds=100.0)
    assert [len(n.tasks) for n in plan.nodes.values()] == [10]


def test_fifty_chains_are_bundled_into_slots_jobs():
    outs = []
    for c in range(50):
        x = delayed(inc)(c)
        for _ in range(9):
            x = delayed(inc)(x)
        outs.append(x)
    plan = plan_of(*outs, seconds=1.0)
    assert len(plan.nodes) == 4
    assert sorted(len(n.tasks) for n in plan.nodes.values()) == [120, 120, 130, 130]
    # each chain's last value is written (requested), no other
    assert sum(len(n.outputs) for n in plan.nodes.values()) == 50
    check_valid(plan)


def test_wide_map_bundled_into_slots_jobs_and_the_cheap_sum_joins_inputs():
    xs = [delayed(inc, pure=True)(i, dask_key_name=f"work-{i}") for i in range(40)]
    with dask.annotate(condor={"duration": 0.0}):
        s = delayed(total)(xs, dask_key_name="sum")
    plan = plan_of(s, seconds=2.0)
    check_valid(plan)
    # 40 x 2 s on 4 slots: 4 jobs of about 20 s, the sum after them
    sizes = sorted(len(n.tasks) for n in plan.nodes.values())
    assert len(plan.nodes) <= 5 and sum(sizes) == 41
    model = CostModel(job_overhead=6, slots=4, default_seconds=2.0, durations=plan.durations)
    assert max(node_seconds(model, n) for n in plan.nodes.values()) <= 22


def test_tree_reduction_cheap_levels_collapse():
    import dask.bag as db

    b = db.from_sequence(range(64), npartitions=16).map(inc).sum(split_every=2)
    # the maps take 2 s (recorded for their key prefix), the reduction is cheap
    plan = plan_of(b, history=History(prefix_seconds={"inc": 2.0}))
    check_valid(plan)
    # the 16 maps in 4 jobs of 8 s; all the reduction's levels in one job
    assert len(plan.nodes) == 5
    reduce_nodes = {plan.task_node[t.name] for n in plan.nodes.values() for t in n.tasks
                    if not t.name.startswith("inc")}
    assert len(reduce_nodes) == 1


def test_blockwise_array_each_output_block_subtree_in_one_job():
    da = pytest.importorskip("dask.array")
    x = (da.ones((8, 8), chunks=2) + 1) * 2
    plan = plan_of(x, seconds=10.0)
    check_valid(plan)
    # no node reads another node's value: every block's subtree is whole in one job
    assert all(not n.inputs for n in plan.nodes.values())
    assert len(plan.nodes) == 4  # 16 blocks bundled onto 4 slots
    assert sum(len(n.outputs) for n in plan.nodes.values()) == 16


def test_shuffle_stages_bundled_per_output_partition():
    # n inputs split into n pieces each; output j collects piece j of every input
    n = 8
    dsk = {}
    for i in range(n):
        dsk[("split", i)] = Task(("split", i), lambda i: {j: i * j for j in range(n)}, i)
        for j in range(n):
            dsk[("piece", j, i)] = Task(("piece", j, i), dict.get, TaskRef(("split", i)), j)
    for j in range(n):
        dsk[("out", j)] = Task(("out", j), lambda *xs: sum(xs),
                               *[TaskRef(("piece", j, i)) for i in range(n)])
    keys = [("out", j) for j in range(n)]
    model = CostModel(job_overhead=6, slots=4, default_seconds=0.5, cores_per_node=1)
    plan = make_plan(read_graph(dsk, keys), name="t", group="auto", cost=model)
    check_valid(plan)
    # every piece of output j sits with output j
    for j in range(n):
        out_node = plan.task_node[[t.name for nd in plan.nodes.values() for t in nd.tasks
                                   if t.key == ("out", j)][0]]
        for i in range(n):
            piece = [t.name for nd in plan.nodes.values() for t in nd.tasks
                     if t.key == ("piece", j, i)][0]
            assert plan.task_node[piece] == out_node
    assert len(plan.nodes) <= 8  # two stages, each bundled onto the slots


def test_different_settings_never_share_a_node_and_group_false_stays_alone():
    a = delayed(inc)(1, dask_key_name="a")
    with dask.annotate(retries=2):
        b = delayed(inc)(a, dask_key_name="b")
    with dask.annotate(condor={"group": False}):
        c = delayed(inc)(b, dask_key_name="c")
    d = delayed(inc)(c, dask_key_name="d")
    e = delayed(inc)(d, dask_key_name="e")
    plan = plan_of(e)
    groups = sorted(sorted(str(t.key) for t in n.tasks) for n in plan.nodes.values())
    assert groups == [["a"], ["b"], ["c"], ["d", "e"]]
    check_valid(plan)


def test_shell_jobs_and_clusters_keep_their_nodes():
    from dask_condordag import shell

    j1 = shell("echo hi > a.txt")
    j2 = shell("cat a.txt", after=[j1])
    with dask.annotate(condor={"processes": 3}):
        p = delayed(inc)(1)
    plan = plan_of(j2, p)
    assert all(len(n.tasks) == 1 for n in plan.nodes.values())
    assert len(plan.nodes) == 3


def test_done_tasks_are_not_grouped_again():
    xs = [delayed(inc)(i) for i in range(4)]
    s = delayed(total)(xs)
    first = plan_of(s)
    (node,) = first.nodes.values()
    done = frozenset({s_name for s_name in first.task_node if s_name.startswith("total")})
    model = CostModel(history=History(done=done))
    again = make_plan(read_graph(dict(s.__dask_graph__()), [s.key]), name="t", group="auto",
                      cost=model)
    # the done sum and the inputs only it reads: one node, all of whose outputs exist
    (node2,) = again.nodes.values()
    assert set(node2.outputs) == done


def test_done_task_read_by_a_task_that_must_run():
    a = delayed(inc)(1, dask_key_name="a")
    b = delayed(inc)(a, dask_key_name="b")
    c = delayed(inc)(b, dask_key_name="c")
    p1 = plan_of(c)
    names_ = {str(t.key): t.name for n in p1.nodes.values() for t in n.tasks}
    model = CostModel(history=History(done=frozenset({names_["b"]})))
    p2 = make_plan(read_graph(dict(c.__dask_graph__()), [c.key]), name="t", group="auto",
                   cost=model)
    groups = sorted(sorted(str(t.key) for t in n.tasks) for n in p2.nodes.values())
    assert groups == [["a", "b"], ["c"]]  # a is read only by the done b: not rerun
    node_b = p2.nodes[p2.task_node[names_["b"]]]
    assert set(node_b.outputs) == {names_["b"]}


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_stay_acyclic(seed):
    rnd = random.Random(seed)
    dsk = {}
    n = 60
    for i in range(n):
        deps = rnd.sample(range(i), min(i, rnd.randint(0, 3)))
        dsk[f"t-{i}"] = Task(f"t-{i}", lambda *a: len(a), *[TaskRef(f"t-{d}") for d in deps])
    ann = {}
    keys = [f"t-{i}" for i in range(n - 5, n)]
    g = read_graph(dsk, keys)
    for i in range(n):
        r = rnd.random()
        if r < 0.2:
            ann[f"t-{i}"] = {"condor": {"duration": rnd.choice([0.0, 1.0, 30.0])}}
        elif r < 0.3:
            ann[f"t-{i}"] = {"retries": 1}
    import dataclasses

    g = dataclasses.replace(g, annotations=ann)
    model = CostModel(job_overhead=6, slots=3, default_seconds=rnd.choice([0.001, 2.0]))
    plan = make_plan(g, name="t", group="auto", cost=model)  # raises on a cycle
    check_valid(plan)
    assert sum(len(nd.tasks) for nd in plan.nodes.values()) == len(plan.task_node)
    for nd in plan.nodes.values():
        assert len({plan_settings for plan_settings in [nd.settings]}) == 1
        assert len({ann.get(str(t.key), {}).get("retries") for t in nd.tasks}) == 1


def test_byte_budget_caps_a_node():
    xs = [delayed(inc)(i) for i in range(100)]
    plan = plan_of(delayed(total)(xs), max_node_bytes=10 * 65536)
    assert len(plan.nodes) > 1
    assert all(len(n.tasks) <= 10 for n in plan.nodes.values())


def test_duration_and_group_annotations_are_checked():
    with dask.annotate(condor={"duration": "long"}):
        x = delayed(inc)(1)
    with pytest.raises(PlanError, match=r"condor\['duration'\]"):
        plan_of(x)
    with dask.annotate(condor={"group": "no"}):
        y = delayed(inc)(1)
    with pytest.raises(PlanError, match=r"condor\['group'\]"):
        plan_of(y)


def test_options_are_checked():
    with pytest.raises(dask_condordag.CondorDagError, match="job_overhead"):
        delayed(inc)(1).compute(scheduler="condordag", run="none", job_overhead=-1)
    with pytest.raises(dask_condordag.CondorDagError, match="slots"):
        delayed(inc)(1).compute(scheduler="condordag", run="none", slots=0)


def test_worker_records_task_seconds_and_the_next_plan_reads_them(tmp_path):
    import time

    def slow(x):
        time.sleep(0.2)
        return x

    s = delayed(total)([delayed(slow)(i) for i in range(3)])
    assert s.compute(scheduler="condordag", run="local", path=tmp_path / "wf",
                     progress=False, group="none") == 3
    h = read_history(tmp_path / "wf")
    slow_names = [n for n in h.seconds if n.startswith("slow")]
    assert len(slow_names) == 3 and all(h.seconds[n] >= 0.19 for n in slow_names)
    assert h.done == frozenset(h.seconds)
    model = CostModel(history=h)
    assert model.task_seconds(slow_names[0]) >= 0.19
    assert model.task_seconds("slow_0000000000000000") >= 0.19  # by key prefix
    assert model.task_bytes(slow_names[0]) > 0
    # the second compute reuses all (the done sum and what only it reads)
    assert s.compute(scheduler="condordag", run="local", path=tmp_path / "wf",
                     progress=False) == 3


def test_records_of_an_earlier_workflow_of_the_same_directory_are_used(tmp_path):
    """Issue 12: per-task cost is "recorded, not guessed": the same function
    (key prefix) in an earlier workflow of the same directory counts. A new
    graph of 2-second calls used to be planned as one job of 1 ms tasks."""
    import time

    def snooze(x):
        time.sleep(0.3)
        return x

    first = delayed(total)([delayed(snooze)(i) for i in range(4)])
    # nothing recorded yet: planned as cheap, one job; only the total is written
    assert first.compute(scheduler="condordag", run="local", path=tmp_path / "w" / "one",
                         progress=False) == 6
    one = dask_condordag.Workflow.open(tmp_path / "w" / "one")
    assert len(one.nodes) == 1
    mine = read_history(tmp_path / "w" / "one")  # the job's log has every task's time
    assert sorted(n.split("_")[0] for n in mine.seconds) == ["snooze"] * 4 + ["total"]
    assert len(mine.done) == 1 and min(mine.seconds.values()) < 0.29
    assert all(v >= 0.29 for n, v in mine.seconds.items() if n.startswith("snooze"))
    other = delayed(total)([delayed(snooze)(i) for i in range(10, 18)])
    opts = dict(job_overhead=0.1, slots=4, cores_per_node=1)  # one-core bundles show it
    wf = dask_condordag.write(other, path=tmp_path / "w" / "two", **opts)
    bundles = [n for n, info in wf.nodes.items() if len(info["tasks"]) > 1]
    assert len(wf.nodes) > 1 and len(bundles) == 4  # one per slot, then the sum
    h = read_history(tmp_path / "w" / "two")
    assert h.elsewhere.means("snooze")[0] >= 0.29 and h.elsewhere.means("nothing") == (None,
                                                                                          None)
    # a workflow elsewhere (another parent directory) knows nothing of them
    alone = dask_condordag.write(other, path=tmp_path / "v" / "two", **opts)
    assert len(alone.nodes) == 1


def squares(n):
    return (i * i for i in range(n))


def test_an_iterator_read_by_two_tasks_of_one_node_is_read_whole_by_both(tmp_path):
    g = delayed(squares)(3)
    both = delayed(tuple)([delayed(sum)(g), delayed(list)(g)])
    wf = dask_condordag.write(both, path=tmp_path / "wf")
    assert len(wf.nodes) == 1  # one job: the generator never leaves it
    wf.run(progress=False)
    assert wf.result() == (5, [0, 1, 4])


# -- several cores per node (cores_per_node) -----------------------------------------------

def wide(n=40, seconds=2.0):
    """n tasks of ``seconds`` (annotated) and a cheap sum of them."""
    with dask.annotate(condor={"duration": seconds}):
        xs = [delayed(inc, pure=True)(i, dask_key_name=f"work-{i}") for i in range(n)]
    return delayed(total)(xs, dask_key_name="sum")


def test_a_wide_map_is_one_job_on_a_partitionable_slot_of_cores():
    plan = plan_of(wide(), cores=4)
    (node,) = plan.nodes.values()
    assert len(node.tasks) == 41 and node.threads == 4
    assert ("request_cpus", "4") in node.settings.submit
    assert list(node.outputs) == [node.tasks[-1].name]  # only the requested sum is written
    model = CostModel(job_overhead=6, slots=4, durations=plan.durations)
    assert node_seconds(model, node) == pytest.approx(20.001)  # 40 x 2 s on 4 threads, + sum


def test_one_core_per_node_keeps_the_one_core_plan():
    plan = plan_of(wide(), cores=1)
    assert len(plan.nodes) > 1 and all(n.threads == 1 for n in plan.nodes.values())
    assert all(not any(c == "request_cpus" for c, _ in n.settings.submit)
               for n in plan.nodes.values())


def test_cheap_work_keeps_one_thread():
    xs = [delayed(inc)(i) for i in range(100)]
    plan = plan_of(delayed(total)(xs), cores=4)  # 0.1 s of work against 6 s per job
    (node,) = plan.nodes.values()
    assert node.threads == 1 and node.settings.submit == ()


def test_a_first_run_without_records_gets_the_cores_its_tasks_can_use():
    # 0.001 s is only the default: if the 100 tasks take seconds each (the
    # pool benchmark's reference (e): 80 s on one thread), the threads save it
    xs = [delayed(inc)(i) for i in range(100)]
    (node,) = plan_of(delayed(total)(xs), cores=4, guessed=True).nodes.values()
    assert node.threads == 4 and ("request_cpus", "4") in node.settings.submit
    three = [delayed(inc)(i) for i in range(3)]
    (node,) = plan_of(delayed(total)(three), cores=4, guessed=True).nodes.values()
    assert node.threads == 3  # no more than can run at once
    x = delayed(inc)(0)
    for _ in range(20):
        x = delayed(inc)(x)
    (node,) = plan_of(x, cores=4, guessed=True).nodes.values()
    assert node.threads == 1 and node.settings.submit == ()  # a chain: nothing at once
    # annotated seconds are no guess
    with dask.annotate(condor={"duration": 0.001}):
        known = [delayed(inc)(i, dask_key_name=f"known-{i}") for i in range(100)]
    with dask.annotate(condor={"duration": 0.001}):
        s = delayed(total)(known)
    (node,) = plan_of(s, cores=4, guessed=True).nodes.values()
    assert node.threads == 1


def test_guessed_bundles_get_threads_too():
    # expensive known tasks force bundles; the cheap guessed level after them
    # is one bundle, which gets the cores its groups can use
    with dask.annotate(condor={"duration": 30.0}):
        xs = [delayed(inc)(i, dask_key_name=f"heavy-{i}") for i in range(8)]
    ys = [delayed(inc)(x, dask_key_name=f"light-{i}") for i, x in enumerate(xs)]
    zs = [delayed(total)([y, ys[(i + 1) % 8]], dask_key_name=f"pair-{i}")
          for i, y in enumerate(ys)]
    plan = plan_of(*zs, cores=2, guessed=True)
    (pairs,) = {plan.task_node[t.name] for n in plan.nodes.values() for t in n.tasks
                if t.key.startswith("pair-")}
    assert len(plan.nodes[pairs].tasks) == 8  # one bundle: 8 x 1 ms, as far as we know
    assert plan.nodes[pairs].threads == 2
    assert ("request_cpus", "2") in plan.nodes[pairs].settings.submit
    # known to be cheap: one thread
    (pairs,) = {n.name for n in plan_of(*zs, cores=2).nodes.values()
                if any(t.key.startswith("pair-") for t in n.tasks)}
    assert plan_of(*zs, cores=2).nodes[pairs].threads == 1


def test_fewest_threads_within_ten_percent():
    # 10,001 x 1 ms: 4 threads take 6 + 2.5 s, 3 threads 6 + 3.33 s (within 10%)
    plan = plan_of(delayed(total)([delayed(inc)(i) for i in range(10000)]), cores=4)
    (node,) = plan.nodes.values()
    assert node.threads == 3


def test_a_chain_gets_no_threads():
    x = delayed(inc)(0)
    for _ in range(20):
        x = delayed(inc)(x)
    (node,) = plan_of(x, seconds=10.0, cores=4).nodes.values()
    assert node.threads == 1  # nothing to run at once: its critical path is all its work


def test_a_level_of_one_core_jobs_becomes_jobs_of_several_cores():
    # 80 x 2 s on 8 slots: one 4-core job would take 40 s, 8 one-core jobs 20 s: more
    # than one job overhead apart, so the level is 2 jobs of 4 threads, then the sum
    plan = plan_of(wide(80), slots=8, cores=4)
    check_valid(plan)
    by_threads = sorted((n.threads, len(n.tasks)) for n in plan.nodes.values())
    assert by_threads == [(1, 1), (4, 40), (4, 40)]
    for n in plan.nodes.values():
        cpus = dict(n.settings.submit).get("request_cpus")
        assert cpus == (str(n.threads) if n.threads > 1 else None)


def test_tasks_that_request_cpus_keep_one_thread():
    with dask.annotate(resources={"cpus": 2}, condor={"duration": 2.0}):
        xs = [delayed(inc, pure=True)(i, dask_key_name=f"work-{i}") for i in range(40)]
        s = delayed(total)(xs, dask_key_name="sum")
    plan = plan_of(s, cores=4)
    assert all(n.threads == 1 for n in plan.nodes.values())
    assert all(dict(n.settings.submit)["request_cpus"] == "2" for n in plan.nodes.values())


def test_threads_reach_the_payload_and_the_submit_description(tmp_path):
    from dask_condordag.worker_files import read_payload

    wf = dask_condordag.write(wide(), path=tmp_path / "wf", cores_per_node=4)
    (node,) = wf.nodes
    meta, _ = read_payload(node, wf.path / wf.nodes[node]["payload"])
    assert meta["threads"] == 4
    subs = [p for p in wf.path.glob("*.sub")
            if re.search(r"^request_cpus\s*=\s*4$", p.read_text(), re.M)]
    assert len(subs) == 1 and subs[0].name in wf.dag_path.read_text()
    one = dask_condordag.write(wide(), path=tmp_path / "one", cores_per_node=1)
    for n, info in one.nodes.items():
        assert "threads" not in read_payload(n, one.path / info["payload"])[0]


def test_plan_report_times_a_threaded_node_on_its_threads(tmp_path):
    from dask_condordag.report import node_durations

    wf = dask_condordag.write(wide(), path=tmp_path / "wf", cores_per_node=4)
    (node,) = wf.nodes
    info = wf.nodes[node]
    *work, last = info["tasks"]  # the manifest keeps what the threads wait for
    assert info["threads"] == 4 and info["reads"] == {last: work}
    # 40 tasks of 2 s on 4 threads, then the sum (2 s by this default): 22 s, not 82 s
    (seconds, source), = node_durations(wf, task_seconds=2.0).values()
    assert source == "default" and seconds == pytest.approx(22.0)


def test_cores_per_node_defaults_by_run_mode_and_is_checked():
    from dask_condordag.config import options
    from dask_condordag.cost import CONDOR_CORES_PER_NODE, model_for

    assert model_for(options({}), "condor").cores_per_node == CONDOR_CORES_PER_NODE == 4
    assert model_for(options({"max_workers": 3}), "local").cores_per_node == 3
    assert model_for(options({"cores_per_node": 2}), "local").cores_per_node == 2
    with pytest.raises(dask_condordag.CondorDagError, match="cores_per_node"):
        options({"cores_per_node": 0})


def test_a_duration_only_annotation_does_not_split_settings():
    # the 40 annotated tasks and the unannotated sum share their (default) settings
    plan = plan_of(wide(), cores=4)
    assert len(plan.nodes) == 1
    assert all(n.settings == dask_condordag.plan.NodeSettings(submit=n.settings.submit)
               for n in plan.nodes.values())


def test_forced_levels():
    from dask_condordag.grouping import forced_levels

    reads = {"b": ("a",), "c": ("b",), "d": ("c",), "e": ("a",)}
    keys = list("abcde")
    assert forced_levels(keys, reads, {}, lambda k: True) == 1
    assert forced_levels(keys, reads, {"c": "retry"}, lambda k: True) == 3  # a-b | c | d
    assert forced_levels(keys, reads, {}, lambda k: k != "b") == 3  # a | b | c-d
    assert forced_levels([], {}, {}, lambda k: True) == 0


def test_threaded_node_seconds_respect_dependencies():
    from dask_condordag.cost import threaded_seconds

    order = ["a", "b", "c", "d"]
    reads = {"c": ("a",), "d": ("c", "b")}
    secs = {"a": 1.0, "b": 3.0, "c": 1.0, "d": 1.0}
    assert threaded_seconds(order, reads, secs, 1) == 6.0
    assert threaded_seconds(order, reads, secs, 2) == 4.0  # d waits for b
    assert threaded_seconds(order, reads, secs, 8) == 4.0


def wait_for_partner(i, where):
    """Mark task ``i`` started, then wait until task ``1 - i`` has started too:
    it returns only when both run at once."""
    import os
    import time

    open(os.path.join(where, f"started-{i}"), "w").close()
    other = os.path.join(where, f"started-{1 - i}")
    deadline = time.monotonic() + 10
    while not os.path.exists(other):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {i} ran alone: task {1 - i} never started beside it")
        time.sleep(0.01)
    return i


def test_a_node_of_two_threads_runs_its_independent_tasks_at_once(tmp_path):
    """End to end: the planner gives the node 2 threads and the worker runs both
    tasks at once (needs the worker's support for the payload's "threads")."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with dask.annotate(condor={"duration": 5.0}):
        xs = [delayed(wait_for_partner)(i, str(marks)) for i in range(2)]
    s = delayed(total)(xs)
    wf = dask_condordag.write(s, path=tmp_path / "wf", job_overhead=0.1, slots=2,
                              cores_per_node=2)
    (node,) = wf.nodes
    assert len(wf.nodes[node]["tasks"]) == 3
    got = s.compute(scheduler="condordag", run="local", path=tmp_path / "wf", max_workers=2,
                    job_overhead=0.1, slots=2, cores_per_node=2, progress=False)
    assert got == 1


# -- the values between jobs cost (cost.value_seconds) ------------------------------------

def _fan_in(n):
    reads = {f"x{i}": () for i in range(n)}
    reads["sum"] = tuple(reads)
    return list(reads), reads


def test_a_wide_cheap_fan_in_stays_one_job_when_its_values_would_cost_more():
    from dask_condordag.grouping import partition

    keys, reads = _fan_in(10_000)
    seconds = {k: 0.001 for k in keys}

    def plan(**kw):
        model = CostModel(job_overhead=0.1, slots=8, cores_per_node=1, **kw)
        return partition(keys, reads, {}, lambda k: True, model,
                         seconds=seconds.__getitem__, nbytes=lambda k: 1)

    # without a price on values: 10 s on one core against 1.25 s on 8 slots,
    # so the rule of one job splits it -- and the sum reads ~9,000 result files
    split = plan(value_seconds=0.0)
    assert len(split.groups) > 1
    assert len(plan().groups) == 1  # at 3 ms a value, the one job (10 s) is cheaper
    # expensive tasks still spread: 40 x 2 s on 100 slots are bundles, then the sum
    keys, reads = _fan_in(40)
    two = partition(keys, reads, {}, lambda k: True,
                    CostModel(job_overhead=6, slots=100, cores_per_node=4),
                    seconds=lambda k: 0.0 if k == "sum" else 2.0, nbytes=lambda k: 1)
    assert len(two.groups) > 2 and two.groups[-1] == ["sum"]
    assert set(two.threads.values()) == {4}
