"""Every example in examples/ runs (each in a fresh interpreter, in a scratch
directory, as a user would run it)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.usefixtures("one_node_per_task")
def test_quickstart_second_run_reuses_everything(tmp_path):
    script = Path(__file__).parent.parent / "examples" / "quickstart.py"
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "17 of 17 nodes done (17 already done before)" in proc.stdout, proc.stdout
