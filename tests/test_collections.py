"""dask's own collections on the local runner equal ``scheduler="sync"`` (issue 9).

Each case runs collections_corpus.py twice, in fresh processes, with different
data, into the same workflow directory: a result cached from the first run
and wrongly reused by the second (the disk shuffle's argument-less partd
task, a changed input file read by ``read_text``) shows as a difference from
sync. Dataframes (group="chains"): set_index, merge, groupby().agg, shuffle;
bags (every task its own job): groupby, foldby, read_text, frequencies."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).with_name("collections_corpus.py")
ITEMS = {"set_index", "merge", "groupby_agg", "shuffle",
         "bag_groupby", "bag_foldby", "read_text", "frequencies"}


def corpus(folder: Path, seed: int) -> dict:
    out = folder / f"out-{seed}.pkl"
    proc = subprocess.run(
        [sys.executable, str(CORPUS), str(seed), str(folder / "wf"), str(out)],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return pickle.loads(out.read_bytes())


@pytest.mark.slow  # ~60 jobs, half of them importing pandas: 30-60 s on 2 cores
def test_collections_equal_sync_twice_with_different_data(tmp_path):
    first = corpus(tmp_path, 1)
    second = corpus(tmp_path, 2)
    assert set(first) == set(second) == ITEMS
    for name in ITEMS:
        assert first[name][0] == first[name][1], f"{name}, first run"
        assert second[name][0] == second[name][1], f"{name}, second run"
        # the data changed, so a stale result could not pass for a right one
        assert first[name][1] != second[name][1], name


def test_read_text_of_a_changed_file_runs_again(tmp_path):
    # the task's argument is the same OpenFile (same path) both times: the
    # file's size and modification time make the difference
    import dask.bag as db

    import dask_condordag  # noqa: F401

    data = tmp_path / "in.txt"
    counts = []
    for text in ("a\nb\n", "a\nb\nc\nd\n"):
        data.write_text(text)
        counts.append(db.read_text(str(data)).count().compute(
            scheduler="condordag", run="local", path=tmp_path / "wf", progress=False))
    assert counts == [2, 4]
