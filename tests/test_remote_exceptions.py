"""A failed task's exception comes back as the object itself (issue 9, item 5):
its type, args and attributes, its __cause__/__context__ chain and notes, with
the remote traceback added as a note; a stand-in only when it cannot come back,
and then the message says why."""

import os
import subprocess
import sys
import textwrap
import threading
import traceback

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import results
from dask_condordag.results import read_error, remote_exception
from dask_condordag.worker_errors import EXC_PICKLE_LIMIT, pack_exception


class CodeError(Exception):
    pass


def fail_with_code():
    e = CodeError("bad code")
    e.code = 42
    raise e


def fail_chained():
    try:
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("while reading")  # __context__: the KeyError
    except ValueError as e:
        raise RuntimeError("could not load") from e


def fail_with_note():
    e = ValueError("noted")
    e.add_note("a note from the task")
    raise e


def fail_unpicklable():
    e = ValueError("holds a lock")
    e.lock = threading.Lock()
    raise e


def _rebuild_on_worker_only(message):
    if not os.path.basename(sys.argv[0]).startswith("dask_condordag_worker"):
        raise RuntimeError("WorkerOnly refuses to be rebuilt outside the worker")
    return WorkerOnly(message)


class WorkerOnly(Exception):
    def __reduce__(self):
        return (_rebuild_on_worker_only, self.args)


def fail_worker_only():
    raise WorkerOnly("only there")


def fail_huge():
    e = ValueError("huge")
    e.blob = b"x" * (EXC_PICKLE_LIMIT + 1)
    raise e


def own_message(exc) -> str:
    """The task's own message: Python 3.10 shows no notes, so there our text is
    appended to a plain message (after a blank line); 3.11+ leaves it alone."""
    text = str(exc)
    if sys.version_info < (3, 11):
        assert "\n\nTask " in text and "Remote traceback" in text
        return text.split("\n\nTask ", 1)[0]
    return text


def _shown(exc) -> str:
    """What Python prints for the exception under its traceback (notes too)."""
    return "".join(traceback.format_exception_only(type(exc), exc))


def test_oserror_keeps_errno_and_filename():
    with pytest.raises(FileNotFoundError) as info:
        delayed(open)("/nonexistent/file.txt").compute(scheduler="condordag")
    e = info.value
    assert type(e) is FileNotFoundError
    assert (e.errno, e.filename) == (2, "/nonexistent/file.txt")
    assert str(e) == "[Errno 2] No such file or directory: '/nonexistent/file.txt'"
    assert "Remote traceback" in _shown(e) and e.dask_condordag.rebuilt


def test_custom_attribute_and_exact_type():
    with pytest.raises(CodeError) as info:
        delayed(fail_with_code)().compute(scheduler="condordag")
    assert type(info.value) is CodeError
    assert info.value.code == 42 and own_message(info.value) == "bad code"


def test_class_from_main_of_a_script_keeps_its_identity(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import dask_condordag
        from dask import delayed

        class MainError(Exception):
            pass

        def fail(x):
            e = MainError("from main", x)
            e.detail = {"x": x}
            raise e

        if __name__ == "__main__":
            try:
                delayed(fail)(7).compute(scheduler="condordag", run="local", path="wf")
            except MainError as e:
                print("same type:", type(e) is MainError, e.args, e.detail)
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "same type: True ('from main', 7) {'x': 7}" in proc.stdout, proc.stdout


def test_a_later_process_gets_the_class_it_can_import(tmp_path):
    """Classes of the user's own code travel by value; in a process other
    than the one that wrote the workflow, the exception gets the class of the
    same name that process imports (from a module, or its own __main__)."""
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
        class ModError(Exception):
            pass

        def fail(x):
            e = ModError("mod", x)
            e.code = 42
            raise e
    """))
    common = textwrap.dedent("""
        import sys, dask_condordag, mymod
        from dask import delayed

        class MainError(Exception):
            pass

        def fail_main(x):
            raise MainError("main", x)
    """)
    (tmp_path / "first.py").write_text(common + textwrap.dedent("""
        for f, path in ((mymod.fail, "wf_mod"), (fail_main, "wf_main")):
            try:
                delayed(f)(7).compute(scheduler="condordag", run="local", path=path)
            except (mymod.ModError, MainError):
                pass
    """))
    (tmp_path / "later.py").write_text(common + textwrap.dedent("""
        for cls, path in ((mymod.ModError, "wf_mod"), (MainError, "wf_main")):
            try:
                dask_condordag.Workflow.open(path).result()
            except cls as e:
                print(path, type(e) is cls, e.args, getattr(e, "code", None))
    """))
    for script in ("first.py", "later.py"):
        proc = subprocess.run([sys.executable, script], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wf_mod True ('mod', 7) 42\nwf_main True ('main', 7) None" in proc.stdout, proc.stdout


def test_chained_exception_keeps_cause_and_context():
    with pytest.raises(RuntimeError) as info:
        delayed(fail_chained)().compute(scheduler="condordag")
    e = info.value
    assert type(e) is RuntimeError and own_message(e) == "could not load"
    cause = e.__cause__
    assert type(cause) is ValueError and str(cause) == "while reading"
    assert e.__suppress_context__ and e.__context__ is cause
    assert type(cause.__context__) is KeyError and cause.__context__.args == ("missing",)
    assert not cause.__suppress_context__ and cause.__cause__ is None
    printed = "".join(traceback.format_exception(e))
    assert "KeyError: 'missing'" in printed and "ValueError: while reading" in printed


@pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note is Python 3.11+")
def test_the_task_notes_come_first_then_ours():
    with pytest.raises(ValueError) as info:
        delayed(fail_with_note)().compute(scheduler="condordag")
    notes = info.value.__notes__
    assert notes[0] == "a note from the task"
    assert "Remote traceback" in notes[1] and "fail_with_note" in notes[1]


def test_exception_that_fails_to_pickle_still_gives_a_report_and_a_stand_in():
    with pytest.raises(ValueError) as info:
        delayed(fail_unpicklable)().compute(scheduler="condordag", path="wf")
    e = info.value
    assert isinstance(e, ValueError) and type(e) is not ValueError  # a stand-in
    msg = str(e)
    assert msg.startswith("holds a lock")
    assert "could not be pickled on the execute node" in msg
    assert "cannot pickle '_thread.lock' object" in msg and "Remote traceback" in msg
    assert not e.dask_condordag.rebuilt
    report = e.dask_condordag.report
    assert "exc_pickle" not in report
    assert report["exc_type"] == "builtins.ValueError" and report["message"] == "holds a lock"
    assert "fail_unpicklable" in report["traceback"] and report["host"]


def test_exception_that_fails_to_unpickle_here_gives_a_stand_in_saying_so():
    with pytest.raises(WorkerOnly) as info:
        delayed(fail_worker_only)().compute(scheduler="condordag")
    e = info.value
    assert type(e) is not WorkerOnly and not e.dask_condordag.rebuilt
    assert str(e).startswith("only there")
    assert "does not unpickle here (RuntimeError: WorkerOnly refuses to be rebuilt" in str(e)
    assert e.dask_condordag.report["exc_pickle"]  # it was sent


def test_an_exception_above_the_size_limit_is_not_sent():
    with pytest.raises(ValueError) as info:
        delayed(fail_huge)().compute(scheduler="condordag")
    assert "above the limit" in str(info.value) and not info.value.dask_condordag.rebuilt


def test_report_keeps_the_plain_fields_next_to_the_object():
    wf = dask_condordag.write(delayed(fail_with_code)(), path="wf")
    wf.run()
    (node,) = wf.nodes
    ((out,),) = wf.nodes[node]["outputs"].values()
    report = read_error(wf.path / out)
    assert report["exc_type"] == f"{__name__}.CodeError" and report["message"] == "bad code"
    assert "fail_with_code" in report["traceback"] and report["host"] and report["exc_pickle"]


class FrozenError(Exception):
    def __setattr__(self, name, value):
        raise AttributeError(f"FrozenError is frozen: cannot set {name}")


def test_a_frozen_exception_still_gets_our_note():
    report = {"node": "n", "traceback": "TB", **pack_exception(FrozenError("cold"))}
    got = remote_exception(report, key="k")
    assert type(got) is FrozenError and own_message(got) == "cold"
    assert got.dask_condordag.key == "k" and "TB" in got.__notes__[-1]


def test_chain_that_fails_to_pickle_sends_the_exception_alone():
    try:
        try:
            e = ValueError("inner")
            e.lock = threading.Lock()
            raise e
        except ValueError:
            raise KeyError("outer")
    except KeyError as exc:
        packed = pack_exception(exc)
    assert "_thread.lock" in packed["exc_chain_error"]
    report = {"exc_type": "builtins.KeyError", "message": "'outer'", "node": "n", **packed}
    got = remote_exception(report, key="k")
    assert type(got) is KeyError and got.args == ("outer",) and got.__context__ is None
    assert "chain could not be sent" in got.__notes__[0]


def test_python_310_without_notes_gets_the_text_in_the_message(monkeypatch):
    monkeypatch.setattr(results, "_HAS_NOTES", False)
    plain = remote_exception({"node": "n", "traceback": "TB-TEXT",
                              **pack_exception(ValueError("plain"))}, key="k")
    assert type(plain) is ValueError and str(plain).startswith("plain\n\nTask k (DAG node n)")
    assert "TB-TEXT" in str(plain) and plain.__notes__ == [str(plain)[len("plain\n\n"):]]
    err = remote_exception({"node": "n", "traceback": "TB-TEXT",
                            **pack_exception(FileNotFoundError(2, "No such file", "/x"))})
    assert (err.errno, err.filename) == (2, "/x")  # the message of an OSError is its fields
    assert str(err) == "[Errno 2] No such file: '/x'" and "TB-TEXT" in err.__notes__[0]


@pytest.mark.condor
def test_real_pool_failure_raises_the_task_exception_itself():
    """On a real pool (skipped where condor_submit_dag is not on PATH): the
    worker runs as the pool's user on an execute slot; the exception object
    still comes back, with its attributes and chain."""
    import shutil

    home = os.environ.get("HOME")  # DAGMan avoids /tmp for node logs
    path = os.path.join(home, f"dcdag-exc-{os.getpid()}")
    try:
        with pytest.raises(RuntimeError) as info:
            delayed(fail_chained)().compute(scheduler="condordag", run="condor", path=path,
                                            poll_interval=1)
        e = info.value
        assert type(e) is RuntimeError and type(e.__cause__) is ValueError
        assert type(e.__cause__.__context__) is KeyError and e.dask_condordag.rebuilt
        with pytest.raises(FileNotFoundError) as info:
            delayed(open)("/nonexistent/file.txt").compute(
                scheduler="condordag", run="condor", path=path + "-open", poll_interval=1)
        assert (info.value.errno, info.value.filename) == (2, "/nonexistent/file.txt")
    finally:
        for p in (path, path + "-open"):
            shutil.rmtree(p, ignore_errors=True)
