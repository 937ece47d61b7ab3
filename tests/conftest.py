import os
import shutil
import tempfile

import dask
import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_temp_folder(tmp_path_factory):
    """This session's system temp folder: a fresh folder (under pytest's base,
    which pytest has placed already), as TMPDIR for this process and every
    process it starts, so that what a test leaves there is its own and not
    another program's on the same machine."""
    folder = str(tmp_path_factory.mktemp("system-temp"))
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    assert tempfile.gettempdir() == folder
    yield folder
    if saved is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved
    tempfile.tempdir = None


@pytest.fixture(autouse=True)
def _nothing_left_in_temp(_private_temp_folder):
    """Fail the test that leaves anything new in the system temp folder
    (a run must leave nothing outside its workflow directory), and clear it
    so the next test starts clean. pytest's own base folder is not counted."""
    folder = tempfile.gettempdir()
    before = set(os.listdir(folder))
    yield
    left = sorted(set(os.listdir(folder)) - before - {f"pytest-of-{_user()}"})
    for name in left:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    if left:
        pytest.fail(f"the test left {len(left)} new entries in the system temp folder "
                    f"{folder}: {', '.join(left)}", pytrace=False)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@pytest.fixture(autouse=True)
def _workflows_in_tmp(tmp_path, monkeypatch):
    """Every test writes its workflows under its own temporary directory."""
    monkeypatch.chdir(tmp_path)
    with dask.config.set({"condordag.directory": str(tmp_path / "workflows")}):
        yield


def pytest_collection_modifyitems(config, items):
    if shutil.which("condor_submit_dag"):
        return
    if os.environ.get("DCD_REQUIRE_POOL") and any("condor" in i.keywords for i in items):
        # CI runs the real-pool tests on purpose: skipping them all would pass silently
        raise pytest.UsageError("DCD_REQUIRE_POOL is set but condor_submit_dag is not on "
                                "PATH: the real-pool tests cannot run here")
    skip = pytest.mark.skip(reason="needs a real HTCondor pool (condor_submit_dag not on PATH)")
    for item in items:
        if "condor" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_node_per_task(monkeypatch):
    """``group="none"`` for tests about what happens to one task's own node
    (its files, logs, reuse, failure, rescue): the default ``"auto"`` may put
    the tasks of their small graphs into one node. Also for the scripts they
    start (``DASK_CONDORDAG__GROUP``)."""
    monkeypatch.setenv("DASK_CONDORDAG__GROUP", "none")
    with dask.config.set({"condordag.group": "none"}):
        yield
