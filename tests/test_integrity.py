"""Never recompute what already finished, never trust a bad result: incremental
reruns across processes, checksums, permissions."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import CorruptResultError, names

from .payloads import edit_payload, payload
from .helpers import inc

SCRIPT = textwrap.dedent('''
    import os, sys, uuid
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dask, dask_condordag
    from dask import delayed
    import mylib

    RUNS = os.environ["RUNS"]  # a global: it travels with mark() (jobs get no environment)

    def mark(tag, value):
        open(os.path.join(RUNS, f"{tag}-{uuid.uuid4().hex}"), "w").close()
        return value

    a = delayed(mark)("a", delayed(mylib.load)(int(os.environ.get("ARG", "1"))))
    b = delayed(mark)("b", delayed(mylib.scale)(a))
    c = delayed(mark)("c", delayed(mylib.other)(5))
    total = delayed(mark)("total", delayed(sum)([b, c]))
    force = os.environ.get("FORCE") == "1"
    print(total.compute(scheduler="condordag", path=os.environ["WF"], force=force))
''')

LIB = textwrap.dedent('''
    FACTOR = {factor}

    def helper(x):
        return x * FACTOR  # {comment}

    def load(n):
        return list(range(n + 3))

    def scale(xs):
        return sum(helper(x) for x in xs)

    def other(n):
        return n {op} 1
''')


class Project:
    """A user's project: a script and its own module, run in fresh processes."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "project"
        self.dir.mkdir()
        self.runs = tmp_path / "runs"
        self.runs.mkdir()
        (self.dir / "script.py").write_text(SCRIPT)
        self.lib(factor=2, comment="double", op="+")

    def lib(self, **kw):
        (self.dir / "mylib.py").write_text(LIB.format(**kw))

    def run(self, **env):
        before = set(os.listdir(self.runs))
        out = subprocess.run(
            [sys.executable, str(self.dir / "script.py")], capture_output=True, text=True,
            cwd=self.dir, env={**os.environ, "RUNS": str(self.runs),
                               "WF": str(self.dir / "wf"), **env})
        assert out.returncode == 0, out.stderr
        ran = sorted(n.split("-")[0] for n in set(os.listdir(self.runs)) - before)
        return out.stdout.strip(), ran


def test_second_run_reuses_everything(tmp_path):
    p = Project(tmp_path)
    assert p.run() == ("18", ["a", "b", "c", "total"])
    assert p.run() == ("18", [])


@pytest.mark.usefixtures("one_node_per_task")
def test_changing_an_argument_reruns_it_and_downstream_only(tmp_path):
    p = Project(tmp_path)
    p.run()
    assert p.run(ARG="2") == ("26", ["a", "b", "total"])


@pytest.mark.usefixtures("one_node_per_task")
def test_changing_a_helper_in_the_users_module_reruns_its_callers(tmp_path):
    p = Project(tmp_path)
    p.run()
    p.lib(factor=2, comment="a comment changed: not a change", op="+")
    assert p.run() == ("18", [])
    p.lib(factor=3, comment="double", op="+")  # a global constant the helper uses
    assert p.run() == ("24", ["b", "total"])
    p.lib(factor=3, comment="double", op="-")  # the body of other()
    assert p.run() == ("22", ["c", "total"])


def test_force_recomputes_everything(tmp_path):
    p = Project(tmp_path)
    p.run()
    assert p.run(FORCE="1") == ("18", ["a", "b", "c", "total"])


@pytest.mark.usefixtures("one_node_per_task")
def test_reused_nodes_are_written_done(tmp_path):
    p = Project(tmp_path)
    p.run()
    p.run(ARG="2")
    dag = next((p.dir / "wf").glob("*.dag")).read_text()
    assert sum(1 for l in dag.splitlines() if l.startswith("JOB ") and l.endswith(" DONE")) == 2


# -- integrity ---------------------------------------------------------------


def _one(tmp_path):
    x = delayed(inc)(delayed(inc)(1))
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    assert wf.run().ok
    (out,) = wf.manifest["outputs"]
    return wf, wf.path / out["files"][0], x


@pytest.mark.usefixtures("one_node_per_task")
@pytest.mark.parametrize("damage", ["truncate", "flip", "swap", "garbage"])
def test_damaged_result_is_reported_not_loaded_and_rerun(tmp_path, damage):
    wf, f, x = _one(tmp_path)
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[:-3])
    elif damage == "flip":
        f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "swap":  # another result copied over it by hand
        other = next(p for p in (wf.path / "results").iterdir() if p != f)
        f.write_bytes(other.read_bytes())
    else:
        f.write_bytes(b"not ours at all")
    with pytest.raises(CorruptResultError) as info:
        wf.result()
    assert str(f) in str(info.value) and repr(x.key) in str(info.value)
    # computing again reruns that node (the damaged file is set aside), nothing else
    wf2 = dask_condordag.write(x, path=tmp_path / "wf")
    assert len(wf2.manifest["reused"]) == 1
    assert list((wf.path / "logs" / "corrupt").iterdir())
    assert wf2.run().ok and wf2.result() == 3


def test_damaged_outputs_pkl_is_refused(tmp_path):
    wf, _, _ = _one(tmp_path)
    p = wf.path / names.OUTPUTS
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(CorruptResultError, match="outputs.pkl"):
        wf.result()


def test_damaged_payload_is_reported_by_the_worker(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (node,) = wf.nodes
    edit_payload(wf, node, lambda data: data[:-2])
    assert not wf.run().ok
    with pytest.raises(Exception, match="damaged or truncated"):
        wf.result()


def test_damaged_pack_index_is_reported_by_the_worker(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (node,) = wf.nodes
    p = wf.path / wf.nodes[node]["payload"]
    p.write_bytes(p.read_bytes().replace(b'":[0,', b'":[0;', 1))
    assert not wf.run().ok
    with pytest.raises(Exception, match="index of payload pack .* is damaged"):
        wf.result()


def test_manifest_records_payload_checksums(tmp_path):
    import hashlib

    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    for node, info in wf.nodes.items():
        data = payload(wf, node)
        head, body = data[len(names.PAYLOAD_MAGIC):].split(b"\n", 1)
        assert json.loads(head)["sha256"] == hashlib.sha256(body).hexdigest()
        assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_files_are_private_by_default(tmp_path):
    wf, f, _ = _one(tmp_path)
    assert stat.S_IMODE(wf.path.stat().st_mode) == 0o700
    for p in wf.path.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, (p, oct(mode))


def test_group_permissions_on_request(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf", permissions="group")
    assert stat.S_IMODE(wf.path.stat().st_mode) == 0o750
    assert stat.S_IMODE((wf.path / "manifest.json").stat().st_mode) == 0o640


def test_two_writers_at_once_keep_their_own_file_modes(tmp_path, monkeypatch):
    # the file mode was module-level state set by each call: a writer that
    # started private and was overtaken by a "group" writer finished its
    # files with the group's mode
    import importlib
    import threading

    W = importlib.import_module("dask_condordag.write")  # (the package's write is the function)

    real, first = W.stage_files, threading.Event()
    overtaken = threading.Event()

    def stage_files(plan, d):  # the private writer waits here for the group one
        if not first.is_set():
            first.set()
            assert overtaken.wait(60)
        return real(plan, d)

    monkeypatch.setattr(W, "stage_files", stage_files)
    errors = []

    def write(name, permissions):
        try:
            dask_condordag.write(delayed(inc)(1), path=tmp_path / name, permissions=permissions)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    private = threading.Thread(target=write, args=("private", "private"))
    private.start()
    assert first.wait(60)
    write("group", "group")
    overtaken.set()
    private.join(60)
    assert not errors, errors
    for name, fmode in (("private", 0o600), ("group", 0o640)):
        files = [p for p in (tmp_path / name).rglob("*") if p.is_file()]
        assert files
        assert {p.relative_to(tmp_path): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} \
            == {p.relative_to(tmp_path): oct(fmode) for p in files}
