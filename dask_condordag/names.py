"""Every name dask-condordag gives to something on disk, in one place.

A workflow directory looks like this (``name`` is the workflow's name)::

    <path>/
        <name>.dag                 the DAG file (condor_submit_dag <name>.dag)
        <name>.sub                 the submit description of the plain nodes
        <name>-<hash>.sub          one per other set of submit settings
        <name>.config, <name>.dot  DAGMan CONFIG / DOT files, when asked for
        <name>.status              the NODE_STATUS_FILE; <name>.jobstate.log
        <name>.dag.rescue001 ...   rescue DAGs (written by DAGMan or our runner)
        <name>.dag.lock            held while the local runner runs (local/files.py)
        <name>.dag.local.log       the local runner's recovery log (local/files.py)
        <name>.timeline.svg        a run's timeline, when asked for (report/timeline.py)
        dagman.cluster             the DAGMan job id after submit (condor.py)
        manifest.json              versions, key -> node -> result file, checksums
        outputs.pkl                the requested keys and dask's repack step
        bin/dask_condordag_worker.py   the worker shim the jobs run, and the
        bin/dask_condordag_worker_*.py ... modules it imports (WORKER_FILES)
        bin/packages.zip           delivery="transfer": the packages the payloads need
        bin/dask_condordag_boot.py ... and the boot script that unpacks them (boot.py)
        nodes/pack_<hash>.pkl      the nodes' payloads, up to PACK_NODES per file
        data/<name>.pkl            large constants, written once, shared by nodes
        results/<task>.pkl         one result (or error report) per task
        results/<node>.p<i>.pkl    ... per process, for a ``queue N`` node
        logs/<node>.out|.err       the jobs' stdout and stderr (.out.<i> per proc)
        logs/corrupt/              damaged results set aside (write.py)

Outside the workflow directory, only while a job runs on the local runner::

    $TMPDIR/condordag-scratch-<runner pid>-<node>-<random>/   the job's scratch
                               folder (local runner), removed when the job
                               ends, on Ctrl-C and on SIGTERM

The names marked with a module live there, next to the code that owns them.
The worker shim (``worker.py`` and its modules, ``WORKER_FILES``) and the
boot script (``boot.py``) are standalone scripts and keep their own copies of
the constants they need; ``tests/test_names.py`` checks they agree.
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
OUTPUTS = "outputs.pkl"
BIN_DIR = "bin"
WORKER = "bin/dask_condordag_worker.py"
#: The worker shim's files: the package's module -> the file it is shipped as,
#: the entry script (WORKER) first. write.py copies each into the workflow,
#: every submit description transfers each (render.py, delivery.py), and the
#: entry script imports the others by their shipped name, from beside itself.
WORKER_FILES = {
    "worker.py": WORKER,
    "worker_files.py": "bin/dask_condordag_worker_files.py",
    "worker_tasks.py": "bin/dask_condordag_worker_tasks.py",
    "worker_errors.py": "bin/dask_condordag_worker_errors.py",
}
#: What a job transfers to run the shim, comma-separated (transfer_input_files).
WORKER_TRANSFER = ",".join(WORKER_FILES.values())
PACKAGES_ZIP = "bin/packages.zip"
BOOT = "bin/dask_condordag_boot.py"
NODES_DIR = "nodes"
DATA_DIR = "data"
RESULTS_DIR = "results"
LOGS_DIR = "logs"
#: Start of the name of a job's scratch folder in the system temp folder (see
#: :func:`scratch_prefix`); one left behind belongs to a runner killed with
#: SIGKILL, and ``dask-condordag gc`` may delete it once that pid is gone.
SCRATCH_PREFIX = "condordag-scratch-"

#: The per-node macros our submit descriptions use, filled by each node's
#: VARS line (render.py): its input files, its output files, its payload pack.
#: A ``vars`` annotation may not set them (annotations.py).
INPUTS_MACRO = "dcd_inputs"
OUTPUTS_MACRO = "dcd_outputs"
PAYLOAD_MACRO = "dcd_payload"
OUR_MACROS = frozenset({INPUTS_MACRO, OUTPUTS_MACRO, PAYLOAD_MACRO})

#: Manifest format written by this version; a newer one is refused on reading.
MANIFEST_FORMAT = 1

#: First line of a payload (followed by one JSON line, then a pickle).
PAYLOAD_MAGIC = b"DCDAG-PAYLOAD 2\n"
#: First line of a payload pack (followed by one JSON line, the index
#: ``{node: [start, end]}``, then the payloads back to back; offsets count
#: from the byte after the index line).
PACK_MAGIC = b"DCDAG-PACK 1\n"
#: A pack holds at most this many payloads and closes once it reaches
#: PACK_BYTES; a payload above PACK_ALONE bytes gets a pack of its own. One
#: file per node made writing 100k-node workflows as slow as creating 100k
#: files (50-90 us each on a VM disk, more on NFS); a job transfers its pack,
#: so the cap on the size bounds what a job receives that it does not need.
PACK_NODES = 64
PACK_BYTES = 256 * 1024
PACK_ALONE = 64 * 1024
#: The tags of a payload's expression language (graph.py lowers a task into
#: it, the worker evaluates it: worker_tasks.py): ``(LIT, value)``, ``(REF, key)``,
#: ``(CALL, func, args, kwargs)``, ``(BUILD, constructor, items)``,
#: ``(DICT, pairs)``, ``(PROC,)``.
LIT, REF, CALL, BUILD, DICT, PROC = 0, 1, 2, 3, 4, 5
#: Start of the header line of a result file holding a value (then
#: "<sha256> <file stem>\n" and a pickle; see worker_files.seal/unseal).
RESULT_OK = b"DCDAG-OK 2 "
#: Start of the header line of a result file holding an error report (then JSON).
RESULT_ERR = b"DCDAG-ERR 2 "

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def dag_file(name: str) -> str:
    return f"{name}.dag"


def submit_file(name: str) -> str:
    return f"{name}.sub"


def pack_file(digest: str) -> str:
    """A payload pack, named by the SHA-256 of its content (``digest``)."""
    return f"{NODES_DIR}/pack_{digest[:16]}.pkl"


def result_file(task: str) -> str:
    return f"{RESULTS_DIR}/{task}.pkl"


def proc_result_file(node: str, proc) -> str:
    """Result of process ``proc`` of a ``queue N`` node (``proc`` may be a macro)."""
    return f"{RESULTS_DIR}/{node}.p{proc}.pkl"


def data_file(name: str) -> str:
    return f"{DATA_DIR}/{name}.pkl"


def log_files(node: str) -> tuple[str, str]:
    return f"{LOGS_DIR}/{node}.out", f"{LOGS_DIR}/{node}.err"


def scratch_prefix(node: str, pid: int) -> str:
    """``tempfile.mkdtemp`` prefix of the scratch folder of ``node``'s job, run
    by the local runner of process ``pid``.

    >>> scratch_prefix("inc-0a1b", 4242)
    'condordag-scratch-4242-inc-0a1b-'
    """
    return f"{SCRATCH_PREFIX}{pid}-{node[:40]}-"


def safe_prefix(text: str, limit: int = 40) -> str:
    """A readable, DAGMan-safe prefix from arbitrary text.

    >>> safe_prefix("my key+with.dots")
    'my_key_with_dots'
    >>> safe_prefix("")
    'task'
    """
    out = _UNSAFE.sub("_", text).strip("_-")[:limit].rstrip("_-")
    return out or "task"


_WORKFLOW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")


def valid_workflow_name(name: str) -> bool:
    """Workflow names become file names and DAGMan arguments: keep them plain.

    >>> valid_workflow_name("mytest"), valid_workflow_name("my test")
    (True, False)
    """
    return isinstance(name, str) and _WORKFLOW_NAME.fullmatch(name) is not None
