"""dask's own collections as their users write them, computed with condordag and
with ``scheduler="sync"``: run by tests/test_collections.py in fresh processes.

    python collections_corpus.py SEED WORKFLOW OUT.pkl

Builds the data from SEED (different data for another seed, the same shapes),
computes the dataframe items in one ``dask.compute`` into WORKFLOW/frames and
the bag items in another into WORKFLOW/bags (the same folders on every run,
so a stale cached result shows) and pickles ``{item: (condordag value, sync
value)}`` to OUT.pkl, each value in a canonical form: rows and groups sorted
where dask leaves their order open. Two partitions (one for the merge's right
side): enough for every shuffle to move data between jobs.
"""

import pickle
import random
import sys
from operator import add

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd

import dask_condordag  # noqa: F401 - registers the scheduler


def frames(rng):
    n = 12
    left = pd.DataFrame({
        "a": rng.sample(range(100), n),
        "k": [rng.randrange(4) for _ in range(n)],
        "b": [rng.randrange(1000) for _ in range(n)],
    })
    right = pd.DataFrame({"k": range(4), "w": [rng.randrange(1000) for _ in range(4)]})
    return dd.from_pandas(left, npartitions=2), dd.from_pandas(right, npartitions=1)


def text_files(rng):
    words = ["ant", "bee", "cat", "dog", "eel"]
    for i in range(2):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 4)))
                 for _ in range(rng.randrange(2, 6))]
        with open(f"in{i}.txt", "w") as f:
            f.write("\n".join(lines) + "\n")


def rows(df, drop_index=False):
    return sorted(map(tuple, df.reset_index(drop=drop_index).itertuples(index=False)))


def groups(pairs):
    return sorted((k, sorted(v)) for k, v in pairs)


def frame_items(rng):
    """{item: (dataframe collection, canonical form of its value)}"""
    left, right = frames(rng)
    return {
        "set_index": (left.set_index("a"), lambda df: (list(df.index), rows(df))),
        # a one-partition right side makes a blockwise merge: jobs that import
        # pandas are where this file's time goes; a merge through a shuffle of
        # both sides runs in process in test_shuffle.py
        "merge": (left.merge(right, on="k"), lambda df: rows(df, drop_index=True)),
        "groupby_agg": (left.groupby("k").agg({"b": "sum", "a": "max"}), rows),
        "shuffle": (left.shuffle("k"), rows),
    }


def bag_items(rng):
    """{item: (bag collection, canonical form of its value)}"""
    text_files(rng)
    nums = db.from_sequence([rng.randrange(50) for _ in range(15)], npartitions=2)
    lines = db.read_text("in*.txt")
    return {
        "bag_groupby": (nums.groupby(lambda x: x % 3), groups),
        "bag_foldby": (nums.foldby(lambda x: x % 3, add, 0, add, 0), sorted),
        "read_text": (lines.count(), lambda n: n),
        "frequencies": (lines.str.split().flatten().frequencies(), sorted),
    }


def compute(items, workflow, group) -> dict:
    """{item: (condordag value, sync value)}, canonical."""
    colls = [c for c, _ in items.values()]
    ours = dask.compute(*colls, scheduler="condordag", run="local", path=workflow,
                        group=group, progress=False)
    sync = dask.compute(*colls, scheduler="sync")
    return {name: (canon(a), canon(b))
            for (name, (_, canon)), a, b in zip(items.items(), ours, sync)}


def main(seed, workflow, out):
    rng = random.Random(int(seed))
    # dataframes: one job per linear chain (each job imports pandas: ~1 s);
    # bags: one job per task, so every lazy iterator a task returns is written
    result = compute(frame_items(rng), f"{workflow}/frames", "chains")
    result.update(compute(bag_items(rng), f"{workflow}/bags", "none"))
    with open(out, "wb") as f:
        pickle.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
