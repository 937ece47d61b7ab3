import shutil

import dask
import pytest


@pytest.fixture(autouse=True)
def _workflows_in_tmp(tmp_path, monkeypatch):
    """Every test writes its workflows under its own temporary directory."""
    monkeypatch.chdir(tmp_path)
    with dask.config.set({"condordag.directory": str(tmp_path / "workflows")}):
        yield


def pytest_collection_modifyitems(config, items):
    if shutil.which("condor_submit_dag"):
        return
    skip = pytest.mark.skip(reason="needs a real HTCondor pool (condor_submit_dag not on PATH)")
    for item in items:
        if "condor" in item.keywords:
            item.add_marker(skip)
