"""dask-condordag boot (delivery='transfer'): unpack packages.zip, run the worker.

    python3 bin/dask_condordag_boot.py NODE PROC PACK

Unpacks bin/packages.zip (the pure-Python packages the payloads need) into a
fresh directory under the job's scratch directory, puts it first on
sys.path and runs bin/dask_condordag_worker.py with the same arguments.
Packages are unpacked rather than imported from the zip because some read
their own data files with open() (dask reads dask/dask.yaml). Standard library
only; if unpacking fails the worker still runs and reports what it cannot import.

This file is copied as it is into each workflow written with
delivery="transfer" (``delivery.py``), like the worker shim; its file names
agree with ``dask_condordag.names`` (``tests/test_names.py`` checks them).
"""
import os
import runpy
import shutil
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ZIP = os.path.join(HERE, "packages.zip")
WORKER = os.path.join(HERE, "dask_condordag_worker.py")


def unpack():
    base = os.environ.get("_CONDOR_SCRATCH_DIR") or os.getcwd()
    target = tempfile.mkdtemp(prefix=".dcd-packages-", dir=base)
    with zipfile.ZipFile(ZIP) as z:
        z.extractall(target)
    return target


def main():
    target = None
    if os.path.exists(ZIP):
        try:
            target = unpack()
            sys.path.insert(0, target)
        except Exception as e:  # noqa: BLE001 - the worker reports what is missing
            sys.stderr.write("[dask-condordag boot] cannot unpack %s: %s: %s\n"
                             % (ZIP, type(e).__name__, e))
    else:
        sys.stderr.write("[dask-condordag boot] %s is missing\n" % ZIP)
    sys.argv = [WORKER] + sys.argv[1:]
    try:
        runpy.run_path(WORKER, run_name="__main__")
    finally:
        if target:
            shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
