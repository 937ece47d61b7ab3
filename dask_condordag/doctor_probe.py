"""dask-condordag doctor's probe: load one node's payload and inputs as its job would.

    python .dcd_doctor_probe.py MODE NODE PROC PACK

Run by ``doctor.py`` (a copy of this file, in the job's scratch directory,
with the interpreter the submit description names): with MODE "transfer"
it first unpacks bin/packages.zip as bin/dask_condordag_boot.py would, then
loads the worker shim, reads and checks the payload, unpickles it and reads
its inputs -- every import by name happens here -- without running the
task. It prints one JSON line last: ``ok``, ``python`` (its version),
``executable``, the ``stage`` it reached and, on failure, ``exc_type``,
``message``, ``module`` (of an ImportError) and ``traceback``. Standard
library only, like the worker shim and the boot script.
"""
import json
import os
import pickle
import runpy
import sys
import traceback


def probe(mode, node, proc, pack):
    out = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable,
           "stage": "starting", "ok": False}
    try:
        if mode == "transfer":
            out["stage"] = "unpacking bin/packages.zip"
            boot = runpy.run_path("bin/dask_condordag_boot.py", run_name="dcd_boot")
            if os.path.exists(boot["ZIP"]):
                sys.path.insert(0, boot["unpack"]())
        out["stage"] = "loading the worker shim"
        w = runpy.run_path("bin/dask_condordag_worker.py", run_name="dcd_worker")
        out["stage"] = "reading the payload"
        meta, body = w["read_payload"](node, pack)
        out["stage"] = "checking versions"
        w["check_versions"](meta)
        out["stage"] = "loading the payload"
        pickle.loads(body)
        for name, path in meta.get("inputs", {}).items():
            out["stage"] = "loading input %s" % (path,)
            for p in (path if isinstance(path, list) else [path]):
                w["read_value"](p)
        out["ok"] = True
    except BaseException as e:  # noqa: BLE001 - everything is reported, nothing raised
        out["exc_type"] = "%s.%s" % (type(e).__module__, type(e).__qualname__)
        out["message"] = str(e)
        out["module"] = getattr(e, "name", None) if isinstance(e, ImportError) else None
        out["traceback"] = traceback.format_exc()
    return out


if __name__ == "__main__":
    result = probe(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
    sys.stdout.write("\n" + json.dumps(result) + "\n")
