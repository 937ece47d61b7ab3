"""plan_report / run_report (report.py): the cost before a run, the time after it."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from operator import add
from pathlib import Path

import dask
import pytest

import dask_condordag
from dask_condordag.exceptions import RunnerError
from dask_condordag.local import launch
from dask_condordag.local.simulate import simulate
from dask_condordag.report import (DEFAULT_JOB_OVERHEAD, DEFAULT_TASK_SECONDS, node_durations,
                                   plan_report, run_report, timeline_svg)

from .helpers import boom, inc

# about one task per node (names, counts, per-node figures): conftest.py
pytestmark = pytest.mark.usefixtures("one_node_per_task")

POOL_RUN = Path(__file__).parent / "data" / "pool_run"  # a 4 x 2 s + sum run on the test pool
SVG = "{http://www.w3.org/2000/svg}"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "dask_condordag.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def by_prefix(wf) -> dict:
    """key prefix (before the ``_<hash>``) -> node name."""
    return {n.rsplit("_", 1)[0]: n for n in wf.nodes}


def fan_in(path):
    """m1..m4 = inc(i); s = m1 + m2 + m3 + m4 (in two adds: s1 = m1 + m2 ...)."""
    dsk = {f"m{i}": (inc, i) for i in range(1, 5)}
    dsk.update({"s1": (add, "m1", "m2"), "s2": (add, "m3", "m4"), "s": (add, "s1", "s2")})
    return dask_condordag.write(dsk, keys=["s"], path=path)


def test_plan_numbers_on_a_fan_in(tmp_path):
    wf = fan_in(tmp_path / "wf")
    n = by_prefix(wf)
    d = {n["m1"]: 3, n["m2"]: 3, n["m3"]: 3, n["m4"]: 3, n["s1"]: 1, n["s2"]: 2, n["s"]: 1}
    rep = plan_report(wf, slots=2, job_overhead=1.0, durations=d)
    # the longest chain by seconds: a map task, s2, s
    assert rep.critical_path[1:] == (n["s2"], n["s"]) and rep.critical_path[0] in (n["m3"], n["m4"])
    assert rep.critical_seconds == 6.0 and rep.levels == 3
    assert rep.total_work == 16.0
    assert rep.lower_bound == max(6.0, 16.0 / 2) + 1.0 * 3 == 11.0
    # two waves of maps (0-4, 4-8), s1 and s2 (8-10, 8-11), s (11-13)
    assert rep.makespan == 13.0
    assert rep.makespan == simulate(wf.dag_path, slots=2, job_latency=1.0,
                                    durations={k: float(v) for k, v in d.items()}).makespan
    assert {x.source for x in rep.nodes} == {"given"} and len(rep.nodes) == 7 and rep.done == 0
    text = str(rep)
    assert "estimated makespan 13 s" in text and "lower bound        11 s" in text


def test_the_bound_of_issue_12_can_exceed_the_makespan(tmp_path):
    """a-b-c (1+2+3 s) beside d (10 s): the longest chain by nodes is not the
    longest by time, so max(cp, work/slots) + overhead x levels (11.5) is above
    what DAGMan achieves (10.5). Documented in the module docstring."""
    dsk = {"a": (inc, 1), "b": (inc, "a"), "c": (inc, "b"), "d": (inc, 0)}
    wf = dask_condordag.write(dsk, keys=["c", "d"], path=tmp_path / "wf")
    n = by_prefix(wf)
    rep = plan_report(wf, slots=2, job_overhead=0.5,
                      durations=lambda node: {"a": 1, "b": 2, "c": 3, "d": 10}[
                          node.rsplit("_", 1)[0]])
    assert rep.critical_path == (n["d"],) and rep.critical_seconds == 10.0 and rep.levels == 3
    assert rep.lower_bound == 11.5 and rep.makespan == 10.5


def test_plan_defaults_bytes_and_a_dict_that_leaves_nodes_out(tmp_path):
    wf = fan_in(tmp_path / "wf")
    n = by_prefix(wf)
    rep = plan_report(wf, slots=1, job_overhead=0.0, task_seconds=0.5)
    assert {x.source for x in rep.nodes} == {"default"}
    assert all(x.seconds == 0.5 * x.tasks for x in rep.nodes)
    assert rep.makespan == 3.5 == rep.lower_bound  # 7 jobs of 0.5 s on one slot
    nodes = {x.name: x for x in rep.nodes}
    assert all(x.payload_bytes and x.payload_bytes > 0 for x in rep.nodes)
    assert nodes[n["s"]].inputs_unknown == 2 and nodes[n["m1"]].inputs_unknown == 0
    assert nodes[n["s"]].output_bytes is None  # not run yet
    rep = plan_report(wf, slots=1, job_overhead=0.0, durations={n["s"]: 4})
    assert {x.name: x.source for x in rep.nodes}[n["s"]] == "given"
    assert rep.makespan == 4 + 6 * DEFAULT_TASK_SECONDS
    with pytest.raises(TypeError, match="durations=3"):
        plan_report(wf, durations=3)
    with pytest.raises(ValueError, match="slots"):
        plan_report(wf, slots=0)


def test_plan_expands_each_submit_description_once(tmp_path, monkeypatch):
    """The simulation expands each node's submit description as DAGMan would;
    plan_report takes the procs from the parsed file, not a second expansion
    per node (half of plan_report's own time on a 5,000-node DAG)."""
    wf = fan_in(tmp_path / "wf")
    calls = []
    describe = launch.Submits.describe
    monkeypatch.setattr(launch.Submits, "describe",
                        lambda self, node, macros: calls.append(node) or describe(self, node, macros))
    rep = plan_report(wf, slots=2, job_overhead=0.0)
    assert sorted(calls) == sorted(wf.nodes) and all(x.procs == 1 for x in rep.nodes)


def test_plan_of_a_submit_description_condor_submit_refuses(tmp_path):
    wf = fan_in(tmp_path / "wf")
    (sub,) = wf.path.glob("*.sub")
    text = sub.read_text()
    sub.write_text(text.replace("\nqueue", '\nenvironment = "A=1 B\nqueue'))
    with pytest.raises(RunnerError, match=r"node \S+: .*unterminated double-quote.*condor_submit "
                                          r"would refuse its submit description"):
        plan_report(wf, slots=2)
    r = cli("plan", wf.path)
    assert r.returncode != 0 and "condor_submit would refuse" in r.stderr and not r.stdout


def test_plan_uses_the_recorded_run_of_the_pool():
    """The pool run's event log: each map ran 2 s, the sum 0 s."""
    rep = plan_report(POOL_RUN, slots=4, job_overhead=6.0)
    assert {x.name.split("_")[0]: (x.seconds, x.source) for x in rep.nodes} == {
        "slow": (2.0, "recorded"), "total": (0.0, "recorded")}
    assert rep.critical_seconds == 2.0 and len(rep.critical_path) == 2 and rep.levels == 2
    assert rep.lower_bound == rep.makespan == 14.0


def test_run_report_of_the_pool_run(tmp_path):
    rep = run_report(POOL_RUN)
    assert len(rep.nodes) == 5 and rep.not_run == () and rep.makespan == 15.0
    first = {r.node: r for r in rep.nodes}["slow_0e82816eccdb1d09"]
    assert (first.queue, first.run, first.transfer) == (6.0, 2.0, None)
    assert first.slot == "slot1_1@vm" and first.source == "event log" and first.status == "done"
    assert (first.bytes_sent, first.bytes_received) == (710, 22315)
    assert sorted(r.queue for r in rep.nodes) == [1.0, 6.0, 6.0, 11.0, 11.0]
    # without the event log: the jobstate log's whole seconds, the same figures here
    for f in POOL_RUN.iterdir():
        if f.name != "wf.dag.nodes.log":
            shutil.copy(f, tmp_path)
    js = run_report(tmp_path)
    assert [(r.node, r.queue, r.run, r.source) for r in js.nodes] == [
        (r.node, r.queue, r.run, "jobstate log") for r in rep.nodes]
    assert js.makespan == 15.0
    assert "the median job waits longer than it runs" in str(rep)


def test_transfer_events_are_split_from_the_queue_wait(tmp_path):
    for f in POOL_RUN.iterdir():
        shutil.copy(f, tmp_path)
    log = tmp_path / "wf.dag.nodes.log"
    text = log.read_text()
    head = "(1708.000.000) 2026-12-06 10:57:"
    extra = (f"040 {head}24 Started transferring input files\n\tTransferring to host: <x>\n...\n"
             f"040 {head}26 Finished transferring input files\n...\n"
             f"040 {head}28 Started transferring output files\n...\n"
             f"040 {head}29 Finished transferring output files\n...\n")
    log.write_text(text + extra)
    r = {r.node: r for r in run_report(tmp_path).nodes}["slow_0e82816eccdb1d09"]
    # submitted :21, input :24-:26, executing :27, output :28-:29, terminated :29
    assert (r.queue, r.transfer, r.run) == (3.0, 3.0, 1.0)
    root = ET.fromstring(timeline_svg(run_report(tmp_path)))
    assert len(root.findall(f".//{SVG}rect[@class='transfer']")) == 2


def test_a_local_run_reported_and_drawn(tmp_path):
    wf = fan_in(tmp_path / "wf")
    with pytest.raises(FileNotFoundError):
        run_report(wf)  # never ran
    assert wf.run(max_workers=2, progress=False).ok
    rep = run_report(wf.path)
    assert len(rep.nodes) == 7 and rep.not_run == ()
    for r in rep.nodes:
        assert r.status == "done" and r.source == "jobstate log" and r.attempts == 1
        assert r.submit <= r.execute <= r.end and r.queue >= 0 and r.run >= 0
    assert rep.start == rep.nodes[0].submit and rep.makespan >= 0
    svg = rep.write_svg()
    assert svg == wf.path / "wf.timeline.svg"
    root = ET.fromstring(svg.read_text())  # well-formed
    assert root.tag == f"{SVG}svg"
    bars = root.findall(f".//{SVG}rect[@class='run']")
    assert len(bars) == 7 == len(root.findall(f".//{SVG}g[@class='node']"))
    assert {g.get("data-node") for g in root.findall(f".//{SVG}g")} == set(wf.nodes)
    # recorded now: what plan_report takes when nothing else is given
    assert {v[1] for v in node_durations(wf).values()} == {"recorded"}


def test_a_failed_node_is_red(tmp_path):
    dsk = {"x": (inc, 1), "y": (boom, "x")}
    wf = dask_condordag.write(dsk, keys=["y"], path=tmp_path / "wf")
    assert not wf.run(max_workers=1, progress=False).ok
    rep = run_report(wf)
    status = {r.node.rsplit("_", 1)[0]: r.status for r in rep.nodes}
    assert status == {"x": "done", "y": "failed"}
    root = ET.fromstring(timeline_svg(rep))
    assert [b.get("fill") for b in root.findall(f".//{SVG}rect[@class='run']")] == [
        "#3070c0", "#d04040"]


def test_cli_plan_and_report(tmp_path):
    wf = fan_in(tmp_path / "wf")
    r = cli("plan", wf.path, "--slots", 2, "--job-overhead", 1, "--task-seconds", 2, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["slots"], d["job_overhead"], len(d["nodes"])) == (2, 1.0, 7)
    assert d["makespan"] == plan_report(wf, slots=2, job_overhead=1, task_seconds=2).makespan
    r = cli("plan", wf.dag_path)
    assert r.returncode == 0 and "estimated makespan" in r.stdout and "critical path" in r.stdout
    r = cli("report", wf.path)
    assert r.returncode == 2 and "no run to report on" in r.stderr
    assert cli("run", wf.path, "-q").returncode == 0
    out = tmp_path / "t.svg"
    r = cli("report", wf.path, "--svg", out)
    assert r.returncode == 0, r.stderr
    assert f"timeline: {out}" in r.stdout and "queue s" in r.stdout
    assert len(ET.parse(out).getroot().findall(f".//{SVG}rect[@class='run']")) == 7
    r = cli("report", wf.path, "--json")
    assert json.loads(r.stdout)["svg"] == str(wf.path / "wf.timeline.svg")


@pytest.mark.condor
def test_run_report_on_the_pool(tmp_path):
    """A real DAGMan run: every node's times come from the node job event log,
    agree with the jobstate log to the second, and become plan's records."""
    wf = fan_in(tmp_path / "wf")
    wf.submit(stream=sys.stderr)
    wf.wait(poll=0.5, progress=False)
    rep = run_report(wf)
    assert len(rep.nodes) == 7 and rep.not_run == ()
    for r in rep.nodes:
        assert r.status == "done" and r.source == "event log" and r.slot, r
        assert r.submit <= r.execute <= r.end and r.bytes_received > 0
    log = (wf.path / f"{wf.name}.dag.nodes.log")
    log.rename(log.with_name("moved"))  # the jobstate log alone
    js = {r.node: r for r in run_report(wf).nodes}
    for r in rep.nodes:
        assert abs(js[r.node].execute - r.execute) <= 1 and abs(js[r.node].end - r.end) <= 1
    log.with_name("moved").rename(log)
    plan = plan_report(wf, slots=4, job_overhead=6.0)
    assert {x.source for x in plan.nodes} == {"recorded"}
    assert ET.fromstring(timeline_svg(rep)).tag == f"{SVG}svg"


def test_an_event_log_job_of_another_node_is_not_taken(tmp_path):
    """A local rerun numbers its jobs 1.0, 2.0 ...: a pool run's event log in
    the same folder may hold those cluster ids for other nodes."""
    for f in POOL_RUN.iterdir():
        shutil.copy(f, tmp_path)
    log = tmp_path / "wf.dag.nodes.log"
    log.write_text(log.read_text().replace('"slow_0e82816eccdb1d09"', '"someone_else"'))
    r = {r.node: r for r in run_report(tmp_path).nodes}
    assert r["slow_0e82816eccdb1d09"].source == "jobstate log"
    assert r["slow_c618356ee31e161d"].source == "event log"


def test_a_big_plan_prints_40_rows_and_says_how_many_more(tmp_path):
    dsk = {f"t{i}": (inc, i) for i in range(45)}
    wf = dask_condordag.write(dsk, keys=list(dsk), path=tmp_path / "wf")
    rep = plan_report(wf, slots=4, job_overhead=1.0, task_seconds=1.0)
    text = str(rep)
    assert text.count(" default ") == 40 and "... and 5 more nodes" in text
    assert len(rep.to_dict()["nodes"]) == 45
    assert rep.makespan == 12 * 2.0 and rep.lower_bound == 45 / 4 + 1.0  # 12 waves


def test_durations_from_the_times_the_worker_recorded_per_task(tmp_path):
    # without a record of the node's job (no jobstate log), plan_report takes
    # each task's wall time from its result file's header (the cost model's records)
    wf = fan_in(tmp_path / "wf")
    wf.run(progress=False)
    (wf.path / f"{wf.name}.jobstate.log").unlink()
    got = node_durations(wf, task_seconds=100.0)
    assert {source for _, source in got.values()} == {"recorded"}
    assert all(0 <= secs < 100.0 for secs, _ in got.values())


def annotated_fan_in(n):
    """``n`` tasks annotated with ``condor={"duration": 2}`` and their sum (not annotated)."""
    with dask.annotate(condor={"duration": 2.0}):
        xs = [dask.delayed(inc)(i, dask_key_name=f"two-{i}") for i in range(n)]
    return dask.delayed(sum)(xs, dask_key_name="total")


def test_plan_defaults_are_the_planners_figures_and_annotations(tmp_path):
    # group="auto" records the cost model it grouped with; plan_report
    # estimates with the same slots, overhead and task seconds by default
    total = annotated_fan_in(8)
    wf = dask_condordag.write(total, path=tmp_path / "wf", group="auto", job_overhead=5.0,
                              slots=3, cores_per_node=1)
    assert wf.manifest["cost"] == {"job_overhead": 5.0, "slots": 3, "cores_per_node": 1,
                                   "max_node_bytes": 2 ** 31}
    rep = plan_report(wf)
    assert (rep.slots, rep.job_overhead) == (3, 5.0)
    # the 16 s of annotated work in the planner's bundles, as the planner saw it
    assert rep.total_work == pytest.approx(16.0 + DEFAULT_TASK_SECONDS)
    sources = {x.source for x in rep.nodes}
    assert "annotated" in sources and "recorded" not in sources
    assert plan_report(wf, slots=1, job_overhead=0.0).slots == 1  # arguments win
    # a workflow grouped without the cost model records none: this machine's figures
    none = dask_condordag.write(total, path=tmp_path / "none", group="none")
    assert "cost" not in none.manifest
    rep = plan_report(none)
    assert rep.job_overhead == DEFAULT_JOB_OVERHEAD["local"]
    assert {x.source for x in rep.nodes} == {"annotated", "default"}


def test_a_threaded_node_counts_its_cores_in_the_work(tmp_path):
    # 40 x 2 s (annotated) + a sum as one job on 4 threads: 20 s on 4 cores;
    # the bound counts 80 core-seconds (it counted 20 and said 2.4x the bound)
    wf = dask_condordag.write(annotated_fan_in(40), path=tmp_path / "wf", group="auto",
                              job_overhead=6.0, slots=4, cores_per_node=4)
    (info,) = wf.nodes.values()
    assert info["threads"] == 4
    rep = plan_report(wf)
    assert rep.total_work == pytest.approx(4 * (20 + DEFAULT_TASK_SECONDS))
    assert rep.makespan == pytest.approx(26 + DEFAULT_TASK_SECONDS)
    assert rep.lower_bound == pytest.approx(rep.makespan)
