"""Getting code to the execute node: the delivery modes' submit descriptions
(expanded by HTCondor's own code), the transfer zip run end to end on the
local runner, and ``doctor``'s preflight."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import zipfile

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import delivery, names, usercode
from dask_condordag.doctor import doctor
from dask_condordag.dagfile import parse_dag
from dask_condordag.exceptions import CondorDagError, PlanError


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def _system_python():
    """/usr/bin/python3 when it runs this Python's minor version (the
    transfer mode's default interpreter), else skip."""
    exe = delivery.delivery_method("transfer").python
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        pytest.skip(f"{exe} does not exist here")
    if out != "%d.%d" % sys.version_info[:2]:
        pytest.skip(f"{exe} is Python {out}, not this one")
    return exe


@pytest.fixture
def installed_module(tmp_path, monkeypatch):
    """Make a module importable only through this process's sys.path, and
    treated as installed code (pickled by reference, like a package in a
    site-packages the execute node does not have)."""
    made = []

    def make(name, source):
        d = tmp_path / "elsewhere"
        d.mkdir(exist_ok=True)
        (d / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(d))
        real = usercode.installed_prefixes
        monkeypatch.setattr(usercode, "installed_prefixes", lambda: real() + (str(d) + "/",))
        monkeypatch.setattr(usercode, "_module_cache", {})
        importlib.invalidate_caches()
        made.append(name)
        return importlib.import_module(name)

    yield make
    for name in made:
        sys.modules.pop(name, None)


def _expanded(wf, commands):
    htcondor2 = pytest.importorskip("htcondor2")
    dag = parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    out = {}
    for name, node in dag.nodes.items():
        sub = htcondor2.Submit((wf.path / node.submit).read_text())
        for k, v in node.vars:
            sub[k] = v
        sub["JOB"] = name
        out[name] = {c: sub.expand(c) if c in sub.keys() else None for c in commands}
    return out


COMMANDS = ("universe", "executable", "transfer_executable", "arguments", "environment",
            "transfer_input_files", "should_transfer_files", "container_image")


def _graph():
    return delayed(add)(delayed(inc)(1), delayed(inc)(2))


def test_shared_mode_submit_description(tmp_path):
    wf = dask_condordag.write(_graph(), path=tmp_path / "wf")
    assert wf.manifest["delivery"]["mode"] == "shared"
    for node, job in _expanded(wf, COMMANDS).items():
        assert job["universe"] == "vanilla"
        assert job["executable"] == sys.executable
        assert job["transfer_executable"] == "false"
        assert job["arguments"] == f'"{names.WORKER} {node} 0 {wf.nodes[node]["payload"]}"'
        assert job["should_transfer_files"] == "YES"
        assert job["environment"] is None and job["container_image"] is None
        assert names.PACKAGES_ZIP not in job["transfer_input_files"]
    assert not (wf.path / names.PACKAGES_ZIP).exists()


def test_transfer_mode_submit_description(tmp_path):
    wf = dask_condordag.write(_graph(), path=tmp_path / "wf", delivery="transfer",
                              worker_python="/opt/py311/bin/python3")
    for node, job in _expanded(wf, COMMANDS).items():
        assert job["universe"] == "vanilla"
        assert job["executable"] == "/opt/py311/bin/python3"
        assert job["transfer_executable"] == "false"
        assert job["arguments"] == f'"{names.BOOT} {node} 0 {wf.nodes[node]["payload"]}"'
        files = job["transfer_input_files"].split(",")
        shim = list(names.WORKER_FILES.values())
        assert files[:len(shim) + 3] == shim + [names.BOOT, names.PACKAGES_ZIP,
                                                wf.nodes[node]["payload"]]
        assert job["environment"] == '"PYTHONNOUSERSITE=1"'
        assert job["should_transfer_files"] == "YES"
    with zipfile.ZipFile(wf.path / names.PACKAGES_ZIP) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
    assert "cloudpickle" in tops  # always: the worker may need it for results
    assert wf.manifest["delivery"]["shipped"] == ["cloudpickle"]


def test_container_mode_and_shared_filesystem_submit_description(tmp_path):
    wf = dask_condordag.write(_graph(), path=tmp_path / "wf", delivery="container",
                              container_image="docker://python:3.11-slim",
                              shared_filesystem=True)
    for node, job in _expanded(wf, COMMANDS).items():
        assert job["universe"] == "container"
        assert job["container_image"] == "docker://python:3.11-slim"
        assert job["executable"] == "/usr/local/bin/python3"
        assert job["transfer_executable"] == "false"
        assert job["arguments"] == f'"{names.WORKER} {node} 0 {wf.nodes[node]["payload"]}"'
        assert job["should_transfer_files"] == "IF_NEEDED"
        shim = list(names.WORKER_FILES.values())
        assert job["transfer_input_files"].split(",")[:len(shim)] == shim


def test_option_errors(tmp_path):
    with pytest.raises(CondorDagError, match="delivery='nope' is not one of"):
        dask_condordag.write(_graph(), path=tmp_path / "a", delivery="nope")
    with pytest.raises(CondorDagError, match="needs container_image"):
        dask_condordag.write(_graph(), path=tmp_path / "b", delivery="container")
    with pytest.raises(CondorDagError, match="absolute path"):
        dask_condordag.write(_graph(), path=tmp_path / "c", delivery="transfer",
                             worker_python="python3")
    with pytest.raises(PlanError, match="by_value: cannot import 'no_such_module_x'"):
        dask_condordag.write(_graph(), path=tmp_path / "d", by_value=["no_such_module_x"])
    with dask.config.set({"condordag.delivery": "transfer",
                          "condordag.assume-installed": "numpy, scipy"}):
        from dask_condordag.config import options

        opts = options({})
        assert (opts.delivery, delivery.from_options(opts).assume_installed) == (
            "transfer", ("numpy", "scipy"))


def test_transfer_refuses_compiled_packages_unless_assumed(tmp_path):
    np = pytest.importorskip("numpy")
    g = delayed(np.sum)(delayed(np.arange)(4))
    with pytest.raises(PlanError, match=r"compiled extensions: 'numpy'.*assume_installed=\['numpy'\]"):
        dask_condordag.write(g, path=tmp_path / "a", delivery="transfer")
    wf = dask_condordag.write(g, path=tmp_path / "b", delivery="transfer",
                              assume_installed=["numpy"])
    with zipfile.ZipFile(wf.path / names.PACKAGES_ZIP) as z:
        assert not any(n.startswith("numpy/") for n in z.namelist())


def test_transfer_runs_end_to_end_with_the_zip(tmp_path, installed_module):
    _system_python()
    mod = installed_module("dcd_helpers_xfer", "import toolz\n"
                           "def double_all(xs):\n    return list(toolz.map(lambda x: 2 * x, xs))\n")
    import toolz

    parts = [delayed(mod.double_all)([i, i + 1]) for i in range(3)]
    total = delayed(toolz.concat)(parts)
    wf = dask_condordag.write(delayed(list)(total), path=tmp_path / "wf", delivery="transfer")
    shipped = wf.manifest["delivery"]["shipped"]
    assert {"dcd_helpers_xfer", "toolz", "cloudpickle"} <= set(shipped)
    # the execute node's interpreter cannot import the module by itself
    probe = subprocess.run([delivery.delivery_method("transfer").python, "-c",
                            "import dcd_helpers_xfer"], capture_output=True, cwd=tmp_path)
    assert probe.returncode != 0
    report = doctor(wf.path)
    assert report.ok, report.summary()
    assert not list((wf.path / names.RESULTS_DIR).iterdir())  # doctor wrote nothing there
    wf.run(progress=False)
    assert wf.result() == [0, 2, 2, 4, 4, 6]


@pytest.mark.usefixtures("one_node_per_task")
def test_doctor_finds_a_module_only_the_submit_side_can_import(tmp_path, installed_module):
    mod = installed_module("dcd_helpers_doc", "def triple(x):\n    return 3 * x\n")
    g = delayed(inc)(delayed(mod.triple)(2))
    wf = dask_condordag.write(g, path=tmp_path / "wf")
    report = doctor(wf.path)
    assert not report.ok
    (problem,) = report.problems
    assert "module 'dcd_helpers_doc' cannot be imported" in problem
    assert "by_value=['dcd_helpers_doc']" in problem
    assert "triple" in report.node
    assert "PROBLEM" in report.summary()
    assert not list((wf.path / names.RESULTS_DIR).iterdir())
    # sent by value, the execute node no longer needs it
    wf2 = dask_condordag.write(g, path=tmp_path / "wf2", by_value=["dcd_helpers_doc"])
    report = doctor(wf2.path)
    assert report.ok, report.summary()
    wf2.run(progress=False)
    assert wf2.result() == 7


@pytest.mark.usefixtures("one_node_per_task")
def test_doctor_reports_missing_inputs_and_version_mismatch(tmp_path):
    x = delayed(inc)(1)
    wf = dask_condordag.write(delayed(inc)(x), path=tmp_path / "wf")
    child = next(n for n, info in wf.nodes.items() if info["parents"])
    report = doctor(wf.path, node=child)
    assert not report.ok
    assert "is missing" in report.problems[0] and "run that first" in report.problems[0]
    report = doctor(wf.path, node="nope")
    assert not report.ok and "has no DAG node 'nope'" in report.problems[0]
    # a workflow written by another Python minor version
    m = json.loads((wf.path / names.MANIFEST).read_text())
    m["versions"]["python"] = "3.1.0"
    (wf.path / names.MANIFEST).write_text(json.dumps(m))
    report = doctor(wf.path)
    assert not report.ok and "Python version mismatch" in report.problems[0]


def test_doctor_on_a_good_workflow_is_quick_and_quiet_about_task_errors(tmp_path):
    def boom(x):
        return 1 / 0

    wf = dask_condordag.write(delayed(boom)(1), path=tmp_path / "wf")
    report = doctor(wf.path)
    assert report.ok, report.summary()
    assert any("ZeroDivisionError" in n for n in report.notes)
    assert report.seconds < 30


def test_doctor_command_exit_codes(tmp_path, installed_module, capsys):
    from dask_condordag import cli

    good = dask_condordag.write(_graph(), path=tmp_path / "good")
    assert cli.main(["doctor", str(good.path)]) == 0
    assert "OK" in capsys.readouterr().out
    mod = installed_module("dcd_helpers_cli", "def f(x):\n    return x\n")
    bad = dask_condordag.write(delayed(mod.f)(1), path=tmp_path / "bad")
    assert cli.main(["doctor", str(bad.path)]) == 1
    assert "dcd_helpers_cli" in capsys.readouterr().out


def test_the_boot_script_shipped_is_the_packaged_file(tmp_path):
    from pathlib import Path

    wf = dask_condordag.write(_graph(), path=tmp_path / "wf", delivery="transfer")
    packaged = Path(delivery.__file__).with_name("boot.py")
    assert (wf.path / names.BOOT).read_bytes() == packaged.read_bytes()


def test_delivery_methods_are_registered_by_name(tmp_path, monkeypatch):
    def shared_with_env(d, submit_python):
        return [("executable", d.interpreter(submit_python)), ("transfer_executable", "false"),
                ("environment", '"DCD_TEST=1"')]

    monkeypatch.setitem(delivery._METHODS, "envtest", delivery.DeliveryMethod(
        "envtest", shared_with_env, python="/opt/envtest/python3"))
    wf = dask_condordag.write(_graph(), path=tmp_path / "wf", delivery="envtest")
    for job in _expanded(wf, COMMANDS).values():
        assert job["executable"] == "/opt/envtest/python3"
        assert job["environment"] == '"DCD_TEST=1"'
    assert wf.manifest["delivery"]["mode"] == "envtest"
    with pytest.raises(CondorDagError, match=r"delivery='nope' is not one of \('shared', "
                                             r"'transfer', 'container', 'envtest'\)"):
        delivery.make_delivery("nope")


class _FailsAtPickling:
    """Counts its picklings and fails at number ``fail_at``: with the count
    of a dry run, only the last one fails -- the module scan, which comes
    after write has pickled the payload (an object whose pickling can fail
    on a later try: it depends on state that changed)."""

    def __init__(self, fail_at=None):
        self.fail_at, self.times = fail_at, 0

    def __reduce__(self):
        self.times += 1
        if self.times == self.fail_at:
            raise TypeError("cannot pickle it this time")
        return (_FailsAtPickling, ())


def _identity(x):
    return x


def test_an_object_the_module_scan_cannot_pickle_is_reported(tmp_path):
    def write(obj, name, **kw):
        return dask_condordag.write(delayed(_identity)(obj, dask_key_name="odd-one"),
                                    path=tmp_path / name, delivery="transfer", **kw)

    dry = _FailsAtPickling()
    assert write(dry, "dry").manifest["delivery"]["unscanned"] == []
    wf = write(_FailsAtPickling(fail_at=dry.times), "wf")
    (line,) = wf.manifest["delivery"]["unscanned"]
    assert "key 'odd-one'" in line and "_FailsAtPickling" in line, line
    assert "cannot pickle it this time" in line
    report = doctor(wf.path, run_task=False)
    assert any("could not be pickled" in n and "key 'odd-one'" in n for n in report.notes), \
        report.summary()


def test_doctor_stages_the_job_with_the_local_runners_launch(tmp_path, monkeypatch):
    import io
    import os

    from dask_condordag.local import launch

    staged = []
    real = launch.stage_inputs

    def spy(scratch, cmds, initialdir):
        staged.append((scratch, initialdir))
        return real(scratch, cmds, initialdir)

    monkeypatch.setattr(launch, "stage_inputs", spy)
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    out = io.StringIO()
    report = doctor(wf.path, stream=out)
    assert report.ok, report.summary()
    ((scratch, initialdir),) = staged
    assert initialdir == wf.path
    # the runner's scratch name: gc knows it, and it is gone afterwards
    assert scratch.name.startswith(names.scratch_prefix(report.node, os.getpid()))
    assert f"in {scratch}" in out.getvalue() and not scratch.exists()
