"""Every ```python block of README.md runs, in order, as one script would.

The blocks run one after the other in one fresh interpreter, sharing their
names (a later block may use ``total`` from the first), in a scratch
directory, with the local runner (``DASK_CONDORDAG__RUN=local``: on a machine
with ``condor_submit_dag`` on PATH, ``run="auto"`` would submit to HTCondor)
and with TMPDIR pointed at an empty folder that must stay empty.

A block that cannot run here is marked on the line before it with
``<!-- no-run: reason -->``; the reason must say what it needs and what tests
the same calls instead. At most ``MAX_NO_RUN`` blocks may be marked.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"
MAX_NO_RUN = 2
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_NO_RUN = re.compile(r"<!-- no-run: (\S.*\S) -->")

RUNNER = r"""
import json, sys, traceback
snippets = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for line, code in snippets:
    print(f"--- README.md line {line}", flush=True)
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    except BaseException:
        print(f"README.md: the block at line {line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def snippets(text: str):
    """``(line, code, no_run_reason or None)`` for each python block."""
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 2  # the first line of code
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = _NO_RUN.fullmatch(before.strip())
        out.append((line, m.group(1), reason.group(1) if reason else None))
    return out


def test_snippets_are_found_and_few_are_skipped():
    found = snippets(README.read_text())
    skipped = [(line, why) for line, _, why in found if why]
    assert len(found) >= 6, found
    assert len(skipped) <= MAX_NO_RUN, skipped
    # a marker that is not right above a block is a mistake, not a skip
    markers = len(re.findall(r"^<!-- no-run", README.read_text(), re.MULTILINE))
    assert markers == len(skipped), "a no-run marker is not on the line before a block"


def test_readme_snippets_run(tmp_path):
    runnable = [(line, code) for line, code, why in snippets(README.read_text()) if not why]
    (tmp_path / "snippets.json").write_text(json.dumps(runnable))
    (tmp_path / "run_snippets.py").write_text(RUNNER)
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {**os.environ, "DASK_CONDORDAG__RUN": "local", "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, str(tmp_path / "run_snippets.py"),
                           str(tmp_path / "snippets.json")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.stdout.count("--- README.md line") == len(runnable)
    assert not list(tmp.iterdir()), "README snippets left files in TMPDIR"


def test_no_run_markers_are_read():
    text = "a\n<!-- no-run: needs X; test_y covers it -->\n```python\nboom()\n```\n" \
           "```python\nok = 1\n```\n"
    assert snippets(text) == [(4, "boom()\n", "needs X; test_y covers it"), (7, "ok = 1\n", None)]
