"""The local runner honours DAGMan's DAG commands and submit features, checked
on hand-written DAG files with real processes (no mocks)."""

import io
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dask_condordag import local
from dask_condordag.exceptions import RunnerError

JOB_PY = textwrap.dedent("""\
    import os, sys, time
    logdir, tag, secs, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    start = time.time()
    with open(os.path.join(logdir, tag + ".start"), "w") as f:
        f.write(str(start))
    time.sleep(secs)
    with open(os.path.join(logdir, tag + ".end"), "w") as f:
        f.write(str(time.time()))
    with open("out.txt", "w") as f:
        f.write(tag + " " + " ".join(sys.argv[5:]))
    sys.exit(code)
""")


def submit_text(queue=1, extra=""):
    return textwrap.dedent(f"""\
        executable = {sys.executable}
        transfer_executable = false
        arguments = "$(job_py) $(logdir) $(JOB).$(Cluster).$(Process).$(RETRY) $(secs:0) $(code:0) $(more:)"
        transfer_output_files = out.txt
        output = logs/$(JOB).$(Process).out
        error = logs/$(JOB).$(Process).err
        {extra}
        queue {queue}
    """)


def make(tmp_path, dag_lines, submits=None, scripts=None):
    """A workflow directory: ``job.sub`` (plus ``submits``), the DAG, scripts."""
    wd = tmp_path / "wf"
    wd.mkdir()
    logdir = tmp_path / "log"
    logdir.mkdir()
    (tmp_path / "job.py").write_text(JOB_PY)
    (wd / "job.sub").write_text(submit_text())
    for name, text in (submits or {}).items():
        (wd / name).write_text(text)
    for name, text in (scripts or {}).items():
        p = wd / name
        p.write_text("#!/bin/sh\n" + text)
        p.chmod(0o755)
    common = f'job_py="{tmp_path / "job.py"}" logdir="{logdir}"'
    lines = []
    for line in textwrap.dedent(dag_lines).splitlines():
        lines.append(line)
        if line.split()[:1] == ["JOB"]:
            lines.append(f"VARS {line.split()[1]} {common}")
    (wd / "w.dag").write_text("\n".join(lines) + "\n")
    return wd, logdir


def runs(logdir, node=None):
    """[(tag, start, end or None)] sorted by start time."""
    out = []
    for p in Path(logdir).glob("*.start"):
        tag = p.name[:-len(".start")]
        if node is not None and tag.split(".")[0] != node:
            continue
        end = p.with_name(tag + ".end")
        out.append((tag, float(p.read_text()), float(end.read_text()) if end.exists() else None))
    return sorted(out, key=lambda r: r[1])


def peak(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_maxjobs_limits_running_nodes_per_category(tmp_path):
    dag = "\n".join(
        [f"JOB a{i} job.sub\nVARS a{i} secs=\"0.4\"\nCATEGORY a{i} big" for i in range(5)]
        + [f"JOB b{i} job.sub\nVARS b{i} secs=\"0.4\"\nCATEGORY b{i} small" for i in range(3)]
        + ["MAXJOBS big 2"])
    wd, logdir = make(tmp_path, dag)
    report = local.run(wd, max_workers=5)
    assert report.ok, report.failed
    big = [(s, e) for t, s, e in runs(logdir) if t.startswith("a")]
    small = [(s, e) for t, s, e in runs(logdir) if t.startswith("b")]
    assert len(big) == 5 and len(small) == 3
    assert peak(big) == 2  # never more, and the throttle is not a serialisation
    assert report.max_running_by_category["big"] == 2
    assert report.max_running_by_category["small"] >= 2  # no MAXJOBS: unthrottled
    assert report.max_running <= 5


def test_retry_counts_and_unless_exit(tmp_path):
    wd, logdir = make(tmp_path, """\
        JOB r job.sub
        VARS r code="3"
        RETRY r 2
        JOB u job.sub
        VARS u code="4"
        RETRY u 5 UNLESS-EXIT 4
        JOB ok job.sub
    """)
    report = local.run(wd, max_workers=2)
    assert set(report.failed) == {"r", "u"} and report.done == {"ok"}
    # $(RETRY) is 0 on the first try: 1 try + 2 retries
    assert [t.split(".")[-1] for t, _, _ in runs(logdir, "r")] == ["0", "1", "2"]
    assert len(runs(logdir, "u")) == 1  # UNLESS-EXIT 4: no retry
    assert report.retries == {"r": 2}
    assert "(after 2 node retries)" in report.failed["r"]
    assert report.exit_code == 1 and report.dag_status == local.DAG_STATUS_NODE_FAILED
    rescue = report.rescue.read_text()
    assert "RETRY r 2\n" in rescue and "RETRY u 5 UNLESS-EXIT 4\n" in rescue
    assert "DONE ok\n" in rescue


def test_failed_pre_script_skips_the_job_and_counts_as_a_try(tmp_path):
    wd, logdir = make(tmp_path, """\
        JOB n job.sub
        SCRIPT PRE n pre.sh $JOB $RETRY $MAX_RETRIES
        SCRIPT POST n post.sh
        RETRY n 2
    """, scripts={"pre.sh": f'echo "$1 $2 $3" >> {tmp_path}/pre.log\nexit 1\n',
                  "post.sh": f"touch {tmp_path}/post-ran\n"})
    report = local.run(wd)
    assert list(report.failed) == ["n"]
    assert report.failed["n"] == "PRE Script failed with status 1 (after 2 node retries)"
    assert (tmp_path / "pre.log").read_text() == "n 0 2\nn 1 2\nn 2 2\n"
    assert runs(logdir) == []  # the job never ran
    assert not (tmp_path / "post-ran").exists()  # DAGMAN_ALWAYS_RUN_POST is false


def test_post_script_return_decides_node_success(tmp_path):
    post = (f'echo "$1 $2 $3 $4" > {tmp_path}/post-$1.log\n'
            'if [ "$1" = flip ]; then exit 0; else exit 2; fi\n')
    wd, logdir = make(tmp_path, """\
        JOB flip job.sub
        VARS flip code="3"
        SCRIPT POST flip post.sh $JOB $RETURN $PRE_SCRIPT_RETURN $JOBID
        JOB spoil job.sub
        SCRIPT PRE spoil true
        SCRIPT POST spoil post.sh $JOB $RETURN $PRE_SCRIPT_RETURN $JOBID
        JOB kid job.sub
        PARENT flip CHILD kid
    """, scripts={"post.sh": post})
    report = local.run(wd, max_workers=1)
    # the job of flip exited 3 but its POST script exited 0: done, child ran
    assert report.done == {"flip", "kid"}
    assert (tmp_path / "post-flip.log").read_text().split()[:3] == ["flip", "3", "-1"]
    # the job of spoil exited 0 but its POST script exited 2: failed
    assert list(report.failed) == ["spoil"]
    assert report.failed["spoil"] == "Job failed due to DAGMAN error 0 and POST Script failed with status 2"
    jobid = (tmp_path / "post-spoil.log").read_text().split()
    assert jobid[1:3] == ["0", "0"] and re.fullmatch(r"\d+\.0", jobid[3])


def test_priority_order_with_one_worker(tmp_path):
    wd, logdir = make(tmp_path, """\
        JOB a job.sub
        JOB b job.sub
        PRIORITY b 5
        JOB c job.sub
        PRIORITY c 10
        JOB d job.sub
        PRIORITY d 5
        JOB e job.sub
        PRIORITY e -1
        JOB f job.sub
        PRIORITY f 20
        PARENT e CHILD f
    """)
    report = local.run(wd, max_workers=1)
    assert report.ok
    order = [t.split(".")[0] for t, _, _ in runs(logdir)]
    # higher first, ties in file order; f's priority is its own, not its
    # parent's (no propagation since 8.5.7), and it waits for e
    assert order == ["c", "b", "d", "a", "e", "f"]


def test_queue_n_runs_a_cluster_of_procs(tmp_path):
    wd, logdir = make(tmp_path, """\
        JOB many three.sub
        VARS many secs="0.3"
        JOB other job.sub
    """, submits={"three.sub": submit_text(3).replace(
        "transfer_output_files = out.txt", "transfer_output_files = out$(Process).txt").replace(
        "$(more:)", "$(Process) $(ProcId)")})
    script = (tmp_path / "job.py").read_text().replace('open("out.txt", "w")',
                                                       'open("out%s.txt" % (sys.argv[5:] or [""])[0], "w")')
    (tmp_path / "job.py").write_text(script)
    report = local.run(wd, max_workers=2)
    assert report.ok, report.failed
    many = runs(logdir, "many")
    tags = sorted(t for t, _, _ in many)
    clusters = {t.split(".")[1] for t in tags}
    assert len(clusters) == 1  # one cluster ...
    assert [t.split(".")[2] for t in tags] == ["0", "1", "2"]  # ... of 3 procs
    for p in range(3):
        text = (wd / f"out{p}.txt").read_text().split()
        assert text[1:] == [str(p), str(p)]  # $(Process) and $(ProcId)
    # procs count against max_workers like separate jobs
    assert peak([(s, e) for _, s, e in runs(logdir)]) <= 2 and report.max_running_procs == 2


def test_a_failing_proc_fails_the_node_and_removes_the_others(tmp_path):
    sub = submit_text(3).replace("$(secs:0) $(code:0)", "$(secs) $(code)").replace(
        "queue 3", "secs = 5\ncode = 0\nqueue 3")
    wd, logdir = make(tmp_path, """\
        JOB many three.sub
        VARS many more="x"
        RETRY many 1
        SCRIPT POST many post.sh $RETURN $JOB_COUNT $EXIT_CODES
        JOB kid job.sub
        PARENT many CHILD kid
    """, submits={"three.sub": sub},
        scripts={"post.sh": f'echo "$1 $2 $3" >> {tmp_path}/post.log\nexit $1\n'})
    t0 = time.monotonic()
    script = (tmp_path / "job.py").read_text().replace(
        "time.sleep(secs)", "secs, code = (0.2, 6) if tag.split('.')[2] == '1' else (secs, code)\n"
                            "time.sleep(secs)")
    (tmp_path / "job.py").write_text(script)
    report = local.run(wd, max_workers=3)
    assert time.monotonic() - t0 < 4  # the 5 s procs were removed, on both tries
    assert list(report.failed) == ["many"] and report.done == set()
    tries = runs(logdir, "many")
    assert len(tries) == 6 and {t.split(".")[-1] for t, _, _ in tries} == {"0", "1"}
    assert [t.split(".")[2] for t, _, e in tries if e is not None] == ["1", "1"]
    assert len({t.split(".")[1] for t, _, _ in tries}) == 2  # a new cluster per try
    # $RETURN is the failed proc's code; the removed procs have no exit code
    assert (tmp_path / "post.log").read_text() == "6 3 6\n6 3 6\n"
    assert report.failed["many"] == ("Job exited with status 6 and POST Script failed "
                                     "with status 6 (after 1 node retries)")
    assert runs(logdir, "kid") == []


def test_abort_dag_on_stops_everything(tmp_path, caplog):
    wd, logdir = make(tmp_path, """\
        JOB stop job.sub
        VARS stop code="7" secs="0.3"
        RETRY stop 3
        ABORT-DAG-ON stop 7 RETURN 9
        JOB slow job.sub
        VARS slow secs="5"
        JOB kid job.sub
        PARENT stop CHILD kid
    """)
    t0 = time.monotonic()
    report = local.run(wd, max_workers=2)
    assert time.monotonic() - t0 < 4  # slow was removed
    assert report.aborted and report.exit_code == 9 and not report.ok
    assert report.dag_status == local.DAG_STATUS_ABORT
    assert [t for t, _, _ in runs(logdir, "stop")] != [] and len(runs(logdir, "stop")) == 1
    assert runs(logdir, "slow")[0][2] is None and runs(logdir, "kid") == []
    assert report.rescue is not None and "\nDONE " not in report.rescue.read_text()
    assert any("aborting the DAG" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_abort_return_value_and_post_script(tmp_path):
    wd, logdir = make(tmp_path, """\
        JOB a job.sub
        VARS a code="4"
        ABORT-DAG-ON a 4
        JOB p job.sub
        VARS p code="4"
        SCRIPT POST p post.sh
        ABORT-DAG-ON p 4
        PARENT p CHILD a
    """, scripts={"post.sh": "exit 0\n"})
    report = local.run(wd, max_workers=1)
    # p's job exited 4, but with a POST script only the script's exit counts
    assert "p" in report.done
    assert report.aborted and report.exit_code == 4  # no RETURN: the node's value
    assert report.failed == {"a": "Job proc (2.0.0) failed with status 4"}


def test_vars_and_dagman_macros_in_the_submit_description(tmp_path):
    sub = submit_text().replace("$(more:)", "$(x) $(JOB) $(DAG_STATUS) $(FAILED_COUNT) "
                                            "$(DAG_PARENT_NAMES:none)")
    wd, logdir = make(tmp_path, """\
        JOB bad job.sub
        VARS bad code="1"
        JOB a job.sub
        JOB b vars.sub
        VARS b x="hello world"
        PARENT a CHILD b
    """, submits={"vars.sub": sub})
    report = local.run(wd, max_workers=1)
    assert report.done == {"a", "b"}
    tag, *args = (wd / "out.txt").read_text().split(" ")
    assert args == ["hello", "world", "b", "2", "1", "a"]


def test_node_status_file_and_jobstate_log(tmp_path):
    wd, logdir = make(tmp_path, """\
        NODE_STATUS_FILE w.status 30
        JOBSTATE_LOG w.jobstate.log
        JOB a job.sub
        JOB bad job.sub
        VARS bad code="2"
        JOB futile job.sub
        JOB pre job.sub DONE
        PARENT bad CHILD futile
    """)
    report = local.run(wd, max_workers=1)
    assert report.done == {"a", "pre"}
    text = (wd / "w.status").read_text()
    ads = parse_classads(text)
    assert [ad["Type"] for ad in ads] == ["DagStatus"] + ["NodeStatus"] * 4 + ["StatusEnd"]
    dag = ads[0]
    assert dag["DagFiles"] == ["w.dag"] and dag["DagStatus"] == 6  # STATUS_ERROR (failed)
    assert "/* \"STATUS_ERROR (failed)\" */" in text
    assert {k: dag[k] for k in ("NodesTotal", "NodesDone", "NodesFailed", "NodesFutile",
                                "NodesQueued", "JobProcsIdle")} == {
        "NodesTotal": 4, "NodesDone": 2, "NodesFailed": 1, "NodesFutile": 1,
        "NodesQueued": 0, "JobProcsIdle": 0}
    nodes = {ad["Node"]: ad for ad in ads[1:-1]}
    assert nodes["a"]["NodeStatus"] == 5 and nodes["a"]["StatusDetails"] == ""
    assert nodes["bad"]["NodeStatus"] == 6
    assert re.fullmatch(r"Job proc \(\d+\.0\.0\) failed with status 2", nodes["bad"]["StatusDetails"])
    assert nodes["futile"]["NodeStatus"] == 7
    assert nodes["futile"]["StatusDetails"] == "Had an ancestor node fail"
    assert nodes["pre"]["StatusDetails"] == "User defined as DONE"
    assert ads[-1]["NextUpdate"] == 0 and "/* \"none\" */" in text
    assert not (wd / "w.status.tmp").exists()
    log = (wd / "w.jobstate.log").read_text().splitlines()
    assert log[0].endswith("INTERNAL *** DAGMAN_STARTED 0.0 ***")
    assert log[-1].endswith("INTERNAL *** DAGMAN_FINISHED 1 ***")
    events = [l.split()[1:] for l in log[1:-1]]
    assert ["a", "SUBMIT", "1.0", "-", "-", "1"] in events
    assert ["a", "JOB_SUCCESS", "0", "-", "-", "1"] in events
    assert any(e[:2] == ["bad", "JOB_FAILURE"] and e[2] == "2" for e in events)


def test_node_status_file_while_running(tmp_path):
    wd, logdir = make(tmp_path, """\
        NODE_STATUS_FILE w.status 0
        JOB slow job.sub
        VARS slow secs="1.5"
        JOB next job.sub
        PARENT slow CHILD next
    """)
    import threading
    seen = []

    def watch():
        for _ in range(100):
            p = wd / "w.status"
            if p.exists() and "not_idle" in p.read_text():
                seen.append(parse_classads(p.read_text()))
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    report = local.run(wd, max_workers=1)
    t.join()
    assert report.ok and seen
    dag, slow, nxt, end = seen[0]
    assert dag["DagStatus"] == 3 and dag["NodesQueued"] == 1 and dag["NodesUnready"] == 1
    assert slow["NodeStatus"] == 3 and slow["JobProcsQueued"] == 1
    assert nxt["NodeStatus"] == 0 and end["NextUpdate"] >= end["EndTime"]


def test_ignored_submit_commands_get_one_notice_each(tmp_path, caplog):
    extra = ('requirements = (OpSys == "LINUX")\nrequest_gpus = 1\n'
             '+ProjectName = "dask"\naccounting_group = group_x\nrequest_memory = 1GB')
    wd, logdir = make(tmp_path, """\
        JOB a gpu.sub
        JOB b gpu.sub
    """, submits={"gpu.sub": submit_text(extra=extra)})
    out = io.StringIO()
    report = local.run(wd, stream=out)
    assert report.ok
    assert out.getvalue() == ""  # warnings go to the logger, not the progress stream
    lines = [r.getMessage() for r in caplog.records
             if r.name == "dask_condordag.local.runner" and r.levelname == "WARNING"]
    for cmd in ("requirements", "request_gpus", "My.ProjectName", "accounting_group"):
        assert sum(f"submit command {cmd} " in l for l in lines) == 1, lines
    assert len(lines) == 4 and len(report.notices) == 4  # request_memory is silent


@pytest.mark.parametrize("line", ["SUBDAG EXTERNAL s inner.dag", "SPLICE s inner.dag",
                                  "FINAL f job.sub"])
def test_unsupported_dag_commands_name_the_line(tmp_path, line):
    wd, _ = make(tmp_path, "JOB a job.sub\n" + line + "\n")
    with pytest.raises(RunnerError, match=r"w\.dag:3: .*" + line.split()[0]):
        local.run(wd)


def parse_classads(text):
    """A small reader for the node status file: a list of dicts."""
    text = re.sub(r" */\*.*?\*/", "", text)
    ads = []
    for body in re.findall(r"\[(.*?)\n\]", text, re.S):
        ad = {}
        for m in re.finditer(r"(\w+) = (.*?);\n", body + "\n", re.S):
            key, val = m.group(1), m.group(2).strip()
            if val.startswith("{"):
                ad[key] = re.findall(r'"((?:[^"\\]|\\.)*)"', val)
            elif val.startswith('"'):
                ad[key] = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            else:
                ad[key] = int(val)
        ads.append(ad)
    return ads
