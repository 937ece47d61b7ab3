"""dask annotations -> DAGMan features: rendering by equality, HTCondor's own
expansion of what we write, end-to-end runs, and every bad input."""

import os

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import PlanError, procid
from dask_condordag.annotations import dag_settings, node_settings
from dask_condordag.dagfile import parse_dag
from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan
from dask_condordag.render import render_dag

from .helpers import add, inc

ADVERSARIAL = [
    'say "hi"',
    "back\\slash\\",
    "dollar $5 and $(notamacro) and $$ and $ENV(HOME) and $",
    "single 'quotes' inside",
    "caf\u00e9 \u2603 \u4e2d\u6587",
    "comma, and # hash",
    "=equals=",
]


def _plan(dsk, keys, **kw):
    g = read_graph(dsk, keys)
    return make_plan(g, name="demo", **kw)


def test_render_node_settings_exact_lines():
    with dask.annotate(retries=2, priority=5, condor={
            "category": "db", "vars": {"state": "Wisconsin", "q": 'a "b"'},
            "retry_unless_exit": 3, "abort_dag_on": (7, 1),
            "pre": "/bin/echo pre $JOB", "post": ["/bin/sh", "post.sh", "$RETURN"]}):
        x = delayed(inc)(1)
    expr = x.__dask_graph__()
    g = read_graph(expr, [x.key])
    plan = make_plan(g, name="demo")
    (node,) = plan.nodes.values()
    n = node.name
    dag = dag_settings(maxjobs={"db": 3}, dag_config={"DAGMAN_MAX_JOBS_IDLE": 500}, dot=True)
    text = render_dag(plan, packs={n: "nodes/pack_0.pkl"}, dag=dag)
    body = [l for l in text.splitlines() if l and not l.startswith("#")]
    assert body == [
        f"JOB {n} demo.sub",
        f'VARS {n} dcd_inputs="nodes/pack_0.pkl" dcd_outputs="results/{n}.pkl" '
        'dcd_payload="nodes/pack_0.pkl"',
        f'VARS {n} state="Wisconsin" q="a \\"b\\""',
        f"RETRY {n} 2 UNLESS-EXIT 3",
        f"PRIORITY {n} 5",
        f"CATEGORY {n} db",
        f"ABORT-DAG-ON {n} 7 RETURN 1",
        f"SCRIPT PRE {n} /bin/echo pre $JOB",
        f"SCRIPT POST {n} /bin/sh post.sh $RETURN",
        "MAXJOBS db 3",
        "CONFIG demo.config",
        "DOT demo.dot",
        "NODE_STATUS_FILE demo.status 30",
        "JOBSTATE_LOG demo.jobstate.log",
    ]
    parsed = parse_dag(text, "demo.dag")  # our DAGMan-syntax reader agrees
    pn = parsed.nodes[n]
    assert (pn.retry, pn.retry_unless_exit, pn.priority, pn.category) == (2, 3, 5, "db")
    assert pn.abort_dag_on == (7, 1) and parsed.maxjobs == {"db": 3}
    assert dict(pn.vars)["q"] == 'a "b"'


def test_equal_submit_settings_share_one_file():
    with dask.annotate(resources={"memory": "2GB"}):
        a = [delayed(inc)(i) for i in range(3)]
    with dask.annotate(resources={"memory": "4GB"}):
        b = [delayed(inc)(i) for i in range(3)]
    plain = [delayed(inc)(i + 10) for i in range(2)]
    wf = dask_condordag.write(*a, *b, *plain, path="wf", cores_per_node=1)  # no request_cpus
    subs = sorted(p.name for p in wf.path.glob("*.sub"))
    assert len(subs) == 3 and "wf.sub" in subs
    assert wf.manifest["submit"] == subs


@pytest.fixture
def htcondor2():
    return pytest.importorskip("htcondor2")


def _expand(htcondor2, wf, node_name, *commands):
    """The node's submit description expanded by HTCondor with its VARS set as
    macros (as DAGMan's direct submit inserts them: not as text lines)."""
    dag = parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    node = dag.nodes[node_name]
    sub = htcondor2.Submit((wf.path / node.submit).read_text())
    for k, v in node.vars:
        sub[k] = v
    sub["JOB"] = node_name
    return {c: sub.expand(c) for c in commands}, sub


def test_resources_and_submit_commands_expand_to_job_attributes(htcondor2):
    with dask.annotate(resources={"memory": "4GB", "cpus": 2, "gpus": 1, "disk": "10GB"},
                       condor={"submit": {
                           "requirements": 'OpSysAndVer == "AlmaLinux9"',
                           "+ProjectName": '"LIGO"', "accounting_group": "group_ligo.user",
                           "container_image": "/cvmfs/images/py311.sif"}}):
        x = delayed(inc)(1)
    wf = dask_condordag.write(x, path="wf")
    (node,) = wf.nodes
    got, sub = _expand(htcondor2, wf, node, "request_memory", "request_cpus", "request_gpus",
                       "request_disk", "requirements", "My.ProjectName", "accounting_group",
                       "container_image")
    assert got == {
        "request_memory": "4096",  # MiB: 4GB is 4 * 1024 MiB, as HTCondor reads it
        "request_cpus": "2",
        "request_gpus": "1",
        "request_disk": "10485760",  # KiB: 10 * 1024**2
        "requirements": 'OpSysAndVer == "AlmaLinux9"',
        "My.ProjectName": '"LIGO"',
        "accounting_group": "group_ligo.user",
        "container_image": "/cvmfs/images/py311.sif",
    }


@pytest.mark.parametrize("value", ADVERSARIAL)
def test_vars_values_round_trip_byte_for_byte(htcondor2, value):
    with dask.annotate(condor={"vars": {"state": value},
                               "submit": {"My.DcdProbe": "$(state)"}}):
        x = delayed(inc)(1)
    wf = dask_condordag.write(x, path="wf")
    (node,) = wf.nodes
    got, _ = _expand(htcondor2, wf, node, "My.DcdProbe")
    assert got["My.DcdProbe"] == value


@pytest.mark.parametrize("value", [ADVERSARIAL[i] for i in (1, 2, 4, 5)])
def test_vars_reach_the_job_on_the_local_runner(value):
    # VARS -> $(state) in the submit's environment -> the task sees the exact value
    with dask.annotate(condor={"vars": {"state": value},
                               "submit": {"environment": "\"STATE='$(state)'\""}}):
        x = delayed(lambda: __import__("os").environ["STATE"])()
    assert x.compute(scheduler="condordag") == value


def test_retries_rerun_a_failing_task(tmp_path):
    count = tmp_path / "count"

    def flaky(path):
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as f:
            f.write(str(n + 1))
        if n < 2:
            raise RuntimeError(f"attempt {n} fails")
        return n

    with dask.annotate(retries=2):
        x = delayed(flaky)(str(count))
    assert x.compute(scheduler="condordag") == 2
    assert count.read_text() == "3"


def test_processes_with_procid():
    def run_point(i, offset):
        return i + offset

    with dask.annotate(condor={"processes": 10}):
        sweep = delayed(run_point)(procid, 5)
    total = delayed(sum)(sweep)
    wf = dask_condordag.write(sweep, total, path="wf")
    subs = sorted(p.read_text().rstrip().splitlines()[-1] for p in wf.path.glob("*.sub"))
    assert subs == ["queue", "queue 10"]
    assert len(wf.nodes) == 2
    wf.run()
    assert wf.result() == (list(range(5, 15)), sum(range(5, 15)))
    assert (sweep.compute(scheduler="condordag")) == list(range(5, 15))


def test_procid_nested_in_containers():
    with dask.annotate(condor={"processes": 3}):
        x = delayed(lambda d: d)({"i": [procid, (procid, 1)]})
    assert x.compute(scheduler="condordag") == [{"i": [i, (i, 1)]} for i in range(3)]


def test_cluster_annotation_groups_siblings():
    def point(x):
        return x * x

    with dask.annotate(condor={"cluster": "sweep"}):
        pts = [delayed(point)(i) for i in range(6)]
    other = delayed(inc)(pts[2])
    wf = dask_condordag.write(*pts, other, path="wf")
    assert len(wf.nodes) == 2  # the sweep (queue 6) and inc
    wf.run()
    assert wf.result() == (0, 1, 4, 9, 16, 25, 5)


def test_one_failing_proc_fails_the_cluster_node():
    def point(i):
        if i == 2:
            raise ValueError("proc 2 fails")
        return i

    with dask.annotate(condor={"processes": 4}):
        x = delayed(point)(procid)
    with pytest.raises(ValueError, match="proc 2 fails") as info:
        x.compute(scheduler="condordag")
    logs = info.value.dask_condordag.logs  # also in the note
    assert logs[0].endswith(".out.2") and logs[1].endswith(".err.2")  # that proc's logs
    assert ".out.2" in info.value.__notes__[0] and ".err.2" in info.value.__notes__[0]


def test_shell_jobs_with_ordering(tmp_path):
    o1, o2, out = (tmp_path / n for n in ("o1", "o2", "out"))
    j1 = dask_condordag.shell(f"echo one > {o1}")
    j2 = dask_condordag.shell(f"echo two | tr a-z A-Z > {o2}")
    j3 = dask_condordag.shell(f"cat {o1} {o2} > {out}", after=[j1, j2])
    wf = dask_condordag.write(j3, path="wf")
    assert len(wf.nodes) == 3
    (child,) = [n for n, i in wf.nodes.items() if i["parents"]]
    assert len(wf.nodes[child]["parents"]) == 2
    vars_line = next(l for l in wf.dag_path.read_text().splitlines()
                     if l.startswith(f"VARS {child} dcd_inputs"))
    inputs = vars_line.split('dcd_inputs="')[1].split('"')[0]
    assert inputs == wf.nodes[child]["payload"]  # ordering only: no result transferred
    wf.run()
    assert wf.result() == 0
    assert out.read_text() == "one\nTWO\n"


def test_shell_failure_fails_the_node(tmp_path):
    job = dask_condordag.shell("false | true")  # pipefail makes this fail
    with pytest.raises(Exception, match="returned non-zero exit status 1"):
        job.compute(scheduler="condordag")


def test_after_orders_any_delayed(tmp_path):
    marker = tmp_path / "m"

    def write():
        marker.write_text("x")
        return 1

    def read():
        return marker.read_text()

    first = delayed(write)()
    second = dask_condordag.after(delayed(read)(), first)
    assert dask.compute(second, scheduler="sync") == ("x",)
    marker.unlink()
    assert second.compute(scheduler="condordag") == "x"


def test_compute_time_annotations_are_defaults_per_key_wins():
    with dask.annotate(condor={"category": "inner", "vars": {"a": "1"}}):
        x = delayed(inc)(1)
    with dask_condordag.annotate(vars={"b": "2"}, category="outer"):
        wf = dask_condordag.write(delayed(add)(x, 1), path="wf")
    dag = parse_dag(wf.dag_path.read_text(), "wf.dag")
    by_cat = {n.category: dict(n.vars) for n in dag.nodes.values()}
    assert by_cat["inner"]["a"] == "1" and by_cat["inner"]["b"] == "2"
    assert by_cat["outer"]["b"] == "2" and "a" not in by_cat["outer"]


def test_nested_annotate_helper_merges():
    with dask_condordag.annotate(category="db", submit={"requirements": "True"}):
        with dask_condordag.annotate(vars={"x": "1"}, submit={"+Project": '"p"'}):
            got = dask.get_annotations()["condor"]
    assert got == {"category": "db", "vars": {"x": "1"},
                   "submit": {"requirements": "True", "+Project": '"p"'}}


# -- bad input: a clear error naming the key and the annotation, nothing written


BAD = [
    ({"retries": -1}, "retries.*below 0"),
    ({"retries": 1.5}, "retries.*not a whole number"),
    ({"retries": True}, "retries.*not a whole number"),
    ({"priority": 1.5}, "priority.*not a whole number"),
    ({"condor": {"vars": {"x": "a $$(Target) b"}}}, r"\$\$\("),
    ({"condor": {"category": "my db"}}, "category"),
    ({"condor": {"vars": {"my var": "x"}}}, r"vars.*'my var'"),
    ({"condor": {"vars": {"queue_len": "x"}}}, "start with 'queue'"),
    ({"condor": {"vars": {"QUEUEX": "x"}}}, "start with 'queue'"),
    ({"condor": {"vars": {"1x": "x"}}}, "not starting with a digit"),
    ({"condor": {"vars": {"JOB": "x"}}}, "defined by DAGMan"),
    ({"condor": {"vars": {"dcd_payload": "x"}}}, "defined by DAGMan or dask-condordag"),
    ({"condor": {"vars": {"dcd_inputs": "x"}}}, "defined by DAGMan or dask-condordag"),
    ({"condor": {"vars": {"x": "a\nb"}}}, "line break"),
    ({"condor": {"vars": {"x": "a\rb"}}}, "line break"),
    ({"condor": {"vars": {"x": [1, 2]}}}, "give a string or a number"),
    ({"condor": {"submit": {"requirements": "a\nqueue 5"}}}, "line break"),
    ({"resources": {"bananas": 3}}, "resources.*bananas.*unknown resource"),
    ({"resources": {"memory": "lots"}}, "memory.*'lots' is not a size"),
    ({"resources": {"cpus": -2}}, "below 0"),
    ({"condor": {"processes": 0}}, "processes.*below 1"),
    ({"condor": {"processes": "4"}}, "processes.*not a whole number"),
    ({"condor": {"submit": {"executable": "/bin/sh"}}}, "executable.*cannot be overridden"),
    ({"condor": {"submit": {"Arguments": "x"}}}, "Arguments.*cannot be overridden"),
    ({"condor": {"submit": {"transfer_input_files": "x"}}}, "cannot be overridden"),
    ({"condor": {"submit": {"output": "x"}}}, "cannot be overridden"),
    ({"condor": {"submit": {"log": "x"}}}, "cannot be overridden"),
    ({"condor": {"submit": {"queue": "5"}}}, "cannot be overridden"),
    ({"condor": {"submit": {"universe": "grid"}}}, "universe"),
    ({"condor": {"submit": {"bad name!": "x"}}}, "not a submit command name"),
    ({"condor": {"submit": {3: "x"}}}, r"condor\['submit'\]\[3\].*not a submit command name"),
    ({"condor": {"submit": ["x"]}}, r"condor\['submit'\].*not a dict of command -> value"),
    ({"condor": {"vars": {("a",): "x"}}}, r"condor\['vars'\]\[\('a',\)\].*letters, digits"),
    ({"condor": {"vars": "a=1"}}, r"condor\['vars'\].*not a dict of name -> value"),
    ({"condor": {"abort_dag_on": (1, 300)}}, "above 255"),
    ({"condor": {"abort_dag_on": (1, 4)}}, r"exit with 4 .*0, 1 or 2.*\(1, 1\)"),
    ({"condor": {"abort_dag_on": 124}}, r"exit with 124 .*again and again.*\(124, 1\)"),
    ({"condor": {"catgory": "x"}}, "unknown setting.*catgory"),
    ({"condor": {"processes": 2, "cluster": "c"}}, "use one"),
    ({"condor": "db"}, "not a dict"),
]


@pytest.mark.parametrize("ann,match", BAD, ids=[m for _, m in BAD])
def test_bad_annotations_are_refused_before_writing(tmp_path, ann, match):
    with dask.annotate(**ann):
        x = delayed(inc)(1, dask_key_name="the-key")
    with pytest.raises(PlanError, match=match) as info:
        dask_condordag.write(x, path=tmp_path / "wf")
    assert "'the-key'" in str(info.value)
    assert not (tmp_path / "wf").exists()


def test_procid_without_processes():
    x = delayed(inc)(procid, dask_key_name="k")
    with pytest.raises(PlanError, match="'k'.*procid.*processes"):
        dask_condordag.write(x, path="wf")


def test_cluster_of_dependent_tasks_is_refused():
    with dask.annotate(condor={"cluster": "c"}):
        a = delayed(inc)(1)
        b = delayed(inc)(a)
    with pytest.raises(PlanError, match="depend on each other"):
        dask_condordag.write(b, path="wf")


def test_cluster_with_different_functions_is_refused():
    with dask.annotate(condor={"cluster": "c"}):
        a = delayed(inc)(1)
        b = delayed(add)(1, 2)
    with pytest.raises(PlanError, match="same function"):
        dask_condordag.write(a, b, path="wf")


@pytest.mark.parametrize("kw,match", [
    ({"maxjobs": {"db": -1}}, "maxjobs"),
    ({"maxjobs": {"my db": 1}}, "category"),
    ({"maxjobs": [("db", 3)]}, r"maxjobs=\[\('db', 3\)\]: give a dict"),
    ({"maxjobs": "db=3"}, "give a dict"),
    ({"dag_config": {"BAD KNOB": 1}}, "knob"),
    ({"dag_config": {"X": "a\nb"}}, "line break"),
    ({"node_status_interval": -5}, "node_status_interval"),
])
def test_bad_dag_settings(kw, match):
    with pytest.raises(PlanError, match=match):
        dask_condordag.write(delayed(inc)(1), path="wf", **kw)


def test_dag_config_file_is_written():
    wf = dask_condordag.write(delayed(inc)(1), path="wf",
                              dag_config={"DAGMAN_MAX_JOBS_IDLE": 500}, maxjobs={"db": 2})
    assert (wf.path / "wf.config").read_text().splitlines()[-1] == "DAGMAN_MAX_JOBS_IDLE = 500"
    assert "MAXJOBS db 2" in wf.dag_path.read_text()


def test_memory_units():
    assert node_settings({"resources": {"memory": 2**30}}).submit == (("request_memory", "1024"),)
    assert node_settings({"resources": {"MEMORY": "512MiB"}}).submit == (("request_memory", "512"),)
    assert node_settings({"resources": {"CPU": 4.0}}).submit == (("request_cpus", "4"),)


# -- annotations of collections inside container arguments (issue 9, item 3) ----
# dask finalizes collections found inside a container argument (delayed(f)([a, b]))
# into one layer each, whose annotations give dask's _AnnotationsTombstone for the
# keys that had none. They must read as "no annotation", never as a value.


def negate(x):
    return -x


def double(x):
    return 2 * x


def _by_prefix(wf) -> dict:
    dag = parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    return {name.rsplit("_", 1)[0]: node for name, node in dag.nodes.items()}


def test_annotated_task_inside_a_list_argument_computes():
    with dask.annotate(retries=2):
        a = delayed(abs)(-1)
    b = delayed(abs)(-2)
    assert delayed(sum)([a, b]).compute(scheduler="condordag", run="local", path="w") == 3


def test_per_key_annotations_inside_a_list_keep_their_own_values():
    with dask.annotate(retries=2):
        a = delayed(inc)(1)
    with dask.annotate(retries=4, condor={"category": "db"}):
        b = delayed(negate)(1)
    c = delayed(double)(1)
    wf = dask_condordag.write(delayed(sum)([a, b, c]), path="wf")
    nodes = _by_prefix(wf)
    assert (nodes["inc"].retry, nodes["inc"].category) == (2, None)
    assert (nodes["negate"].retry, nodes["negate"].category) == (4, "db")
    assert (nodes["double"].retry, nodes["double"].category) == (0, None)
    wf.run()
    assert wf.result() == 2 - 1 + 2


def test_compute_time_annotations_fill_in_keys_without_their_own_inside_a_list():
    with dask.annotate(retries=2):
        a = delayed(inc)(1)
    b = delayed(negate)(1)
    with dask.annotate(retries=5, condor={"category": "outer"}):
        wf = dask_condordag.write(delayed(sum)([a, b]), path="wf")
    nodes = _by_prefix(wf)
    assert (nodes["inc"].retry, nodes["inc"].category) == (2, "outer")  # its own wins
    assert (nodes["negate"].retry, nodes["negate"].category) == (5, "outer")  # the default


def test_annotations_inside_nested_containers():
    with dask.annotate(condor={"category": "deep", "vars": {"v": "1"}}):
        a = delayed(inc)(1)
    with dask.annotate(priority=3):
        b = delayed(negate)(2)
    c = delayed(double)(3)
    arg = {"x": [a, (b, {"y": [c]})], "z": 1}
    total = delayed(lambda d: d["x"][0] + d["x"][1][0] + d["x"][1][1]["y"][0] + d["z"])(arg)
    wf = dask_condordag.write(total, path="wf")
    nodes = _by_prefix(wf)
    assert (nodes["inc"].category, dict(nodes["inc"].vars)["v"]) == ("deep", "1")
    assert nodes["negate"].priority == 3 and nodes["negate"].category is None
    assert (nodes["double"].priority, nodes["double"].category) == (0, None)
    wf.run()
    assert wf.result() == 2 - 2 + 6 + 1


# -- sizes as HTCondor reads them (issue 9, item 9) -----------------------------
# value -> (request_memory in MiB, request_disk in KiB), as condor_submit 25.14
# reads ``request_memory = value`` (the iB spellings as their B twins)
SIZES = [
    ("2GB", 2048, 2097152),
    ("2GiB", 2048, 2097152),
    ("2000MB", 2000, 2048000),
    ("512M", 512, 524288),
    ("1.5GB", 1536, 1572864),
    ("2 gb", 2048, 2097152),
    ("3Gi", 3072, 3145728),
    ("2.2M", 3, 2253),
    ("0.5M", 1, 512),
    ("1024K", 1, 1024),
    ("1.0001GB", 1024, 1048576),  # HTCondor reads three decimals
    ("1T", 1048576, 1073741824),
    ("4k", 1, 4),
    (2**31, 2048, 2097152),  # an int is bytes
    (1000, 1, 1),
    (1.5e9, 1431, 1464844),
]


@pytest.mark.parametrize("value,mib,kib", SIZES, ids=[repr(v[0]) for v in SIZES])
def test_sizes_are_read_as_htcondor_reads_them(value, mib, kib):
    got = node_settings({"resources": {"memory": value, "disk": value}}, key="k").submit
    assert got == (("request_disk", str(kib)), ("request_memory", str(mib)))


def _condor_submit():
    import shutil

    found = shutil.which("condor_submit")
    if found:
        return found, dict(os.environ)
    prefix = os.environ.get("DCD_CONDOR_PREFIX", "/opt/dcd-htcondor")
    exe, config = f"{prefix}/bin/condor_submit", f"{prefix}/etc/condor_config"
    if not (os.path.exists(exe) and os.path.exists(config)):
        pytest.skip("condor_submit is not installed here")
    return exe, {**os.environ, "CONDOR_CONFIG": config}


def test_sizes_agree_with_condor_submit(tmp_path):
    """Our reading of each string size equals condor_submit's own (-dry-run
    prints the job ad it would queue)."""
    import re
    import subprocess

    exe, env = _condor_submit()
    for value, _, _ in SIZES:
        if not isinstance(value, str):
            continue
        sub = tmp_path / "size.sub"
        theirs = re.sub(r"(?i)([kmgt])i(b?)$", r"\1b", value)  # HTCondor knows no "iB"
        sub.write_text(f"executable = /bin/true\nrequest_memory = {theirs}\n"
                       f"request_disk = {theirs}\nqueue\n")
        out = subprocess.run([exe, "-dry-run", "-", str(sub)], capture_output=True,
                             text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        ad = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        ours = dict(node_settings({"resources": {"memory": value, "disk": value}}).submit)
        assert (ours["request_memory"], ours["request_disk"]) == (
            ad["RequestMemory"], ad["RequestDisk"]), value


@pytest.mark.parametrize("value,match", [
    ("1024", r"'1024' has no unit: HTCondor would read it as MiB and dask as bytes"),
    ("2048B", "'2048B' is not a size"),
    ("2PB", "'2PB' is not a size"),
    ("-1GB", "'-1GB' is not a size"),
    ("1e3", "'1e3' is not a size"),
    ("", "'' is not a size"),
    (-3, "-3 is not a size in bytes"),
    (float("nan"), "nan is not a size in bytes"),
    ([1], r"\[1\] is a list, not a size"),
    (True, "True is not a size"),
])
def test_bad_sizes_name_the_key_and_the_annotation(value, match):
    with pytest.raises(PlanError, match=r"key 'k': annotation resources\['memory'\]: " + match):
        node_settings({"resources": {"memory": value}}, key="k")
