"""The conftest fixture that fails a test leaving files in the system temp
folder can itself fail: a leaking test is reported, a clean one is not."""

import shutil
import subprocess
import sys
from pathlib import Path

LEAKY = '''
import tempfile


def test_leaks():
    tempfile.mkdtemp(prefix="leaked-by-a-test-")


def test_clean(tmp_path):
    (tmp_path / "fine").write_text("tmp_path is pytest's own")
'''


def test_a_test_that_leaves_a_temp_folder_fails(tmp_path):
    shutil.copyfile(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "ERROR" in out and "test_leaks" in out and "leaked-by-a-test-" in out, out
    assert "2 passed, 1 error" in out, out
