"""``dask-condordag gc`` and ``dask_condordag.gc()`` (issue 9, item 8)."""

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import cli, names
from dask_condordag.exceptions import CondorDagError, WorkflowError
from dask_condordag.gc import gc, parse_age

from . import fake_condor
from .helpers import add, inc
from .test_cli_edges import _slow_workflow, _start_run, console

DAY = 86400


@contextlib.contextmanager
def runner_lock(dag_path: Path):
    """Hold ``<dag>.lock`` as a running local runner does (an exclusive
    ``flock``, "pid N on HOST" in the file)."""
    lock = dag_path.with_name(dag_path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        lock.unlink()
        os.close(fd)


@pytest.fixture(autouse=True)
def own_temp(tmp_path, monkeypatch):
    """gc looks for scratch folders in the system temp folder: give each test
    its own, so that no test deletes what another process is using."""
    d = tmp_path / "systmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    monkeypatch.setenv("TMPDIR", str(d))
    return d


def _files(path: Path) -> set:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def _age(path: Path, days: float) -> None:
    """Make everything under ``path`` look ``days`` old."""
    t = time.time() - days * DAY
    for p in [path, *path.rglob("*")]:
        os.utime(p, (t, t), follow_symlinks=False)


def _two_versions(path: Path):
    """A workflow written and run twice at ``path``: the second graph changes
    one leaf and the big constant; ``inc(10)`` is in both."""
    v1 = delayed(add)(delayed(inc)(1), delayed(len)(delayed(b"a" * 100_000)))
    w1 = dask_condordag.write(delayed(add)(v1, delayed(inc)(10)), path=path)
    assert w1.run(progress=False).ok
    before = _files(path)
    v2 = delayed(add)(delayed(inc)(2), delayed(len)(delayed(b"b" * 100_000)))
    w2 = dask_condordag.write(delayed(add)(v2, delayed(inc)(10)), path=path)
    assert w2.run(progress=False).ok
    return w1, w2, before


def _named(wf) -> set:
    m = wf.manifest
    out = {f for info in m["nodes"].values() for fs in info["outputs"].values() for f in fs}
    return out | {info["payload"] for info in m["nodes"].values()} | set(m["data"].values())


@pytest.mark.usefixtures("one_node_per_task")
def test_deletes_what_no_current_node_names_and_keeps_the_rest(tmp_path):
    w1, w2, before = _two_versions(tmp_path / "wf")
    path = w2.path
    stray_pack = path / names.NODES_DIR / "pack_00000000deadbeef.pkl"  # a pool run's leftover
    stray_pack.write_bytes(b"x" * 10)
    (path / "logs" / "corrupt").mkdir()
    (path / "logs" / "corrupt" / "r.pkl.123").write_bytes(b"damaged")
    old_only = {f for f in _named(w1) - _named(w2)}
    assert any(f.startswith("results/") for f in old_only)
    assert any(f.startswith("data/") for f in old_only)
    shared = {f for f in _named(w1) & _named(w2) if f.startswith("results/")}
    assert shared, "inc(10) is in both graphs"
    have = _files(path)
    sizes = {f: (path / f).stat().st_size for f in have}

    report = dask_condordag.gc(path)  # the package's own name for it
    removed = {str(i.path.relative_to(path)) for i in report.removed}
    expect = ({f for f in old_only if f in have} | {str(stray_pack.relative_to(path))}
              | {f for f in have if f.startswith("logs/") and not f.startswith("logs/corrupt")
                 and not any(f"/{n}." in f for n in w2.nodes)})
    assert removed == expect
    assert report.bytes == sum(sizes[f] for f in removed)
    assert {i.kind for i in report.removed} == {"result", "pack", "data", "log"}
    after = _files(path)
    assert after == have - removed
    assert _named(w2) <= after and shared <= after  # what current nodes name stays
    assert "logs/corrupt/r.pkl.123" in after and "manifest.json" in after
    assert dask_condordag.Workflow.open(path).result() == 3 + 100_000 + 11
    again = dask_condordag.write(w2_graph(), path=path)  # nothing to rerun
    assert again.status()["done"] == len(again.nodes)
    assert gc(path).removed == []


def w2_graph():
    v2 = delayed(add)(delayed(inc)(2), delayed(len)(delayed(b"b" * 100_000)))
    return delayed(add)(v2, delayed(inc)(10))


def test_dry_run_lists_and_deletes_nothing(tmp_path, capsys):
    _, w2, _ = _two_versions(tmp_path / "wf")
    have = _files(w2.path)
    report = gc(w2.path, dry_run=True)
    assert report.removed and report.dry_run
    assert _files(w2.path) == have
    assert report.summary().startswith("would free ")
    assert cli.main(["gc", str(w2.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for item in report.removed:
        assert f"would delete {item.path} (" in out
    assert "(dry run: nothing was deleted)" in out and _files(w2.path) == have
    real = gc(w2.path)
    assert [i.path for i in real.removed] == [i.path for i in report.removed]
    assert real.summary() == report.summary().replace("would free", "freed")


def test_console_script_prints_what_it_freed(tmp_path):
    _, w2, _ = _two_versions(tmp_path / "wf")
    expect = gc(w2.path, dry_run=True)
    r = console("gc", w2.path)
    assert r.returncode == 0, r.stderr
    n = len(expect.removed)
    assert len(re.findall(r"^deleted ", r.stdout, re.M)) == n
    assert r.stdout.splitlines()[-1] == expect.summary().replace("would free", "freed")
    assert re.search(r"freed \d+\.\d KiB: \d+ results?, .*\d+ logs?", r.stdout)
    q = console("gc", w2.path, "-q")
    assert q.returncode == 0 and q.stdout.strip() == "nothing to delete (freed 0 bytes)"


def test_a_workflow_the_local_runner_holds_is_kept(tmp_path):
    _, w2, _ = _two_versions(tmp_path / "wf")
    have = _files(w2.path)
    with runner_lock(w2.dag_path):
        report = gc(w2.path, older_than=0)
        assert report.removed == []
        ((path, why),) = report.kept
        assert path == w2.path and f"the local runner runs it (pid {os.getpid()}" in why
        assert _files(w2.path) == have | {f"{w2.dag_path.name}.lock"}
    assert gc(w2.path).removed


def test_a_running_local_run_is_kept_end_to_end(tmp_path):
    wf = _slow_workflow(tmp_path)
    stray = wf.path / names.RESULTS_DIR / "old_0123456789abcdef.pkl"
    stray.write_bytes(b"an old result")
    p = _start_run(wf, tmp_path)
    try:
        r = console("gc", tmp_path, "--older-than", "0s")
        assert r.returncode == 0, r.stderr
        assert f"kept {wf.path}: the local runner runs it (pid {p.pid}" in r.stdout
        assert stray.exists() and wf.path.exists()
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    r = console("gc", wf.path)
    assert f"deleted {stray} (13 bytes)" in r.stdout and not stray.exists()


def test_a_dag_on_the_pool_is_kept(tmp_path, monkeypatch):
    state = fake_condor.install(tmp_path, monkeypatch)
    try:
        slow = dask_condordag.write(delayed(time.sleep)(30), path=tmp_path / "slow",
                                    node_status_interval=1)
        stray = slow.path / names.RESULTS_DIR / "old_0123456789abcdef.pkl"
        stray.write_bytes(b"old")
        assert cli.main(["submit", str(slow.path)]) == 0
        report = gc(slow.path, older_than=0)
        assert report.removed == []
        assert report.kept == [(slow.path, "its DAGMan job 1001 is in condor_q")]
        assert stray.exists()
        slow.remove()
        deadline = time.monotonic() + 60
        while slow._query().dagman is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        report = gc(slow.path)
        assert stray in [i.path for i in report.removed] and not stray.exists()
    finally:
        fake_condor.stop_all(state)


def test_a_dag_that_may_be_on_a_pool_we_cannot_ask_is_kept(tmp_path, monkeypatch):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (wf.path / "dagman.cluster").write_text("4242\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no condor_q here
    report = gc(tmp_path, older_than=0)
    assert report.removed == []
    ((path, why),) = report.kept
    assert path == wf.path and "DAGMan job 4242 may still be in the queue" in why


def test_a_dag_submitted_by_hand_that_may_run_is_kept(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    stray = wf.path / names.RESULTS_DIR / "old_0123456789abcdef.pkl"
    stray.write_bytes(b"old")
    dag = wf.dag_path.name
    (wf.path / f"{dag}.condor.sub").write_text("universe = scheduler\n")
    lock = wf.path / f"{dag}.lock"
    lock.write_text("ProcessId = 1234\n")  # DAGMan's, no flock
    report = gc(tmp_path, older_than=0)
    assert report.removed == [] and stray.exists()
    ((path, why),) = report.kept
    assert path == wf.path and f"condor_submit_dag {dag}) may run it" in why
    lock.unlink()  # DAGMan exited
    assert [i.path for i in gc(wf.path).removed] == [stray]


def test_old_workflows_go_whole(tmp_path, capsys):
    root = tmp_path / "workflows"
    old = dask_condordag.write(delayed(inc)(1), path=root / "old")
    new = dask_condordag.write(delayed(inc)(2), path=root / "new")
    busy = dask_condordag.write(delayed(inc)(3), path=root / "busy")
    (root / "not-a-workflow").mkdir()
    _age(old.path, 40)
    _age(busy.path, 40)
    _age(root / "not-a-workflow", 40)
    with runner_lock(busy.dag_path):
        dry = gc(root, older_than="30d", dry_run=True)
        assert [(i.path, i.kind) for i in dry.removed] == [(old.path, "workflow")]
        assert old.path.exists()
        assert cli.main(["gc", str(root), "--older-than", "30d"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {old.path} (" in out and "freed " in out and ": 1 workflow" in out
    assert f"kept {busy.path}: the local runner runs it" in out
    assert not old.path.exists() and new.path.exists() and busy.path.exists()
    assert (root / "not-a-workflow").exists()
    assert sorted(p.name for p in root.iterdir()) == ["busy", "new", "not-a-workflow"]
    assert gc(root, older_than="30d").removed == []  # the run just used busy: it is new
    _age(busy.path, 40)
    assert [i.path for i in gc(root, older_than="30d").removed] == [busy.path]


def test_default_directory_is_where_compute_writes(tmp_path, capsys):
    assert delayed(inc)(1).compute(scheduler="condordag", run="local", progress=False) == 2
    wf = dask_condordag.last_workflow()
    assert wf.path.parent == tmp_path / "workflows"  # conftest's condordag.directory
    _age(wf.path, 2)
    assert [i.path for i in gc(older_than="1d").removed] == [wf.path]
    # the console script, from a folder holding ./condordag-workflows
    os.chdir(tmp_path)
    dask_condordag.write(delayed(inc)(7), path=tmp_path / "condordag-workflows" / "w")
    _age(tmp_path / "condordag-workflows" / "w", 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_CONDORDAG")}
    r = console("gc", "--older-than", "1d", env=env)
    assert r.returncode == 0 and "freed" in r.stdout and ": 1 workflow" in r.stdout
    assert not (tmp_path / "condordag-workflows" / "w").exists()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_scratch_folders(own_temp, tmp_path):
    dead = own_temp / (names.scratch_prefix("inc_0a1b", _dead_pid()) + "x1")
    live = own_temp / (names.scratch_prefix("inc_0a1b", os.getpid()) + "x2")
    other = own_temp / "condordag-something-else"
    for d in (dead, live, other):
        (d / "nodes").mkdir(parents=True)
        (d / "nodes" / "pack.pkl").write_bytes(b"p" * 100)
    dry = gc(tmp_path, dry_run=True)
    assert [(i.path, i.kind, i.bytes) for i in dry.removed] == [(dead, "scratch", 100)]
    report = gc(tmp_path)
    assert [i.path for i in report.removed] == [dead]
    assert not dead.exists() and live.exists() and other.exists()
    assert "1 scratch folder" in report.summary()
    assert gc(tmp_path, scratch=False).removed == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux's /proc")
def test_a_scratch_folder_a_process_works_in_is_kept(own_temp, tmp_path):
    dead = own_temp / (names.scratch_prefix("sleep_0a1b", _dead_pid()) + "x1")
    dead.mkdir()
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=dead)
    try:
        deadline = time.monotonic() + 30
        while not _in_use(dead) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gc(tmp_path).removed == [] and dead.exists()
    finally:
        job.kill()
        job.wait()
    assert [i.path for i in gc(tmp_path).removed] == [dead]


def _in_use(d: Path) -> bool:
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.readlink(f"/proc/{p}/cwd").startswith(str(d)):
                return True
        except OSError:
            pass
    return False


def test_a_killed_runners_scratch_folders_end_to_end(tmp_path):
    wf = _slow_workflow(tmp_path)
    p = _start_run(wf, tmp_path)  # TMPDIR: tmp_path / "scratch"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    scratch = tmp_path / "scratch"
    left = sorted(d for d in scratch.iterdir() if d.name.startswith(names.SCRATCH_PREFIX))
    assert left and all(f"{names.SCRATCH_PREFIX}{p.pid}-" in d.name for d in left)
    env = {**os.environ, "TMPDIR": str(scratch)}
    # a job of the killed runner still runs in its folder: that one stays
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_in_use(d) for d in left):
        busy = console("gc", wf.path, "--dry-run", env=env)
        assert all(str(d) not in busy.stdout for d in left if _in_use(d))
        time.sleep(0.5)
    r = console("gc", wf.path, env=env)
    assert r.returncode == 0, r.stderr
    assert f"{len(left)} scratch folder" in r.stdout
    assert not any(d.exists() for d in left)


def test_bad_input(tmp_path, capsys):
    assert cli.main(["gc", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(WorkflowError, match="is not a folder"):
        gc(tmp_path / "f.txt")
    for bad in ("30", "-1d", "soon", "3 days"):
        assert cli.main(["gc", str(tmp_path), "--older-than", bad]) == 2
        assert "--older-than" in capsys.readouterr().err
    with pytest.raises(CondorDagError, match="is not an age"):
        gc(tmp_path, older_than="yesterday")
    assert parse_age("2w") == 14 * DAY and parse_age(1.5) == 1.5


def test_an_unreadable_workflow_is_kept(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (wf.path / "manifest.json").write_text("{not json")
    _age(wf.path, 40)
    report = gc(tmp_path, older_than="1d")
    assert report.removed == [] and wf.path.exists()
    assert "cannot read its manifest" in report.kept[0][1]


@pytest.mark.condor
def test_a_dag_on_a_real_pool_is_kept(tmp_path):
    """Needs a real pool: gc asks condor_q about the DAGMan job of dagman.cluster."""
    import shutil

    home = os.environ.get("HOME", str(tmp_path))  # DAGMan avoids /tmp for node logs
    path = Path(home) / f"dcdag-gc-test-{os.getpid()}"
    try:
        wf = dask_condordag.write(delayed(time.sleep)(120), path=path, node_status_interval=1)
        stray = wf.path / names.RESULTS_DIR / "old_0123456789abcdef.pkl"
        stray.write_bytes(b"old")
        cluster = wf.submit()
        report = gc(wf.path, older_than=0)
        assert report.kept == [(wf.path, f"its DAGMan job {cluster} is in condor_q")]
        assert report.removed == [] and stray.exists()
        wf.remove()
        deadline = time.monotonic() + 120
        while wf._query().dagman is not None and time.monotonic() < deadline:
            time.sleep(1)
        assert stray in [i.path for i in gc(wf.path).removed] and not stray.exists()
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_hidden_folders_are_not_workflows_but_a_dead_gcs_leftovers_go(tmp_path):
    root = tmp_path / "workflows"
    staged = dask_condordag.write(delayed(inc)(1), path=root / ".wf.tmp-123-0")  # as write stages
    stray = staged.path / names.RESULTS_DIR / "old_0123456789abcdef.pkl"
    stray.write_bytes(b"old")
    _age(staged.path, 40)
    left = dask_condordag.write(delayed(inc)(2), path=root / f".old.gc-{_dead_pid()}")
    mine = dask_condordag.write(delayed(inc)(3), path=root / f".new.gc-{os.getpid()}")
    report = gc(root, older_than="1d")
    assert [(i.path, i.kind) for i in report.removed] == [(left.path, "workflow")]
    assert stray.exists() and mine.path.exists() and not left.path.exists()
