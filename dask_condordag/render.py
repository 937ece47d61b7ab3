r"""Render a plan as DAGMan and submit-language text. Pure: strings in, strings out.

Data
    In: a :class:`~dask_condordag.plan.Plan` and the submit settings. Out: the
    lines of ``<name>.dag`` and the text of ``<name>.sub``.

Policy
    * One submit description is shared by every node whose submit settings are
      equal; what differs per node (its input and output files) travels in
      ``VARS`` macros we name and fill with names we generate -- never user data
      in ``arguments`` (seen on an HTCondor 25.14 pool: a VARS value with a
      double quote substituted into ``arguments`` fails the submit step,
      "failed to create job classad", and DAGMan fails the node).
    * Files move with HTCondor's file transfer and ``preserve_relative_paths``,
      so the same workflow runs on pools without a shared file system: inputs
      arrive under ``nodes/``, ``results/``, ``data/`` in the job's scratch
      directory and ``results/<task>.pkl`` come back into ``results/``.
    * Payloads travel in packs of up to ``names.PACK_NODES`` (write.py
      decides which); ``dcd_payload`` names the node's pack, which is also
      the first of its ``dcd_inputs``.
    * The interpreter is named by absolute path with ``transfer_executable =
      false`` (a copied venv interpreter loses its environment).

Example::

    >>> print(render_vars("n1", [("a", 'say "hi" \\ $5 $(x)')]))
    VARS n1 a="say \"hi\" \\ $5 $(DOLLAR)(x)"
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import names
from .names import INPUTS_MACRO, OUR_MACROS, OUTPUTS_MACRO, PAYLOAD_MACRO
from .settings import DagSettings
from .tokens import sha

__all__ = ["render_dag", "render_submit", "render_vars", "render_config", "submit_files",
           "dag_files", "vars_value"]

#: a ``$`` the submit language would read as the start of a macro
MACRO_DOLLAR = re.compile(r"\$(?=\(|[A-Za-z_][A-Za-z0-9_]*\()")

#: the worker's arguments after its own path (the boot script of
#: delivery="transfer" passes the same on)
WORKER_ARGS = f"$(JOB) $(Process) $({PAYLOAD_MACRO})"


def vars_value(value: str) -> str:
    """Quote a VARS value so DAGMan and the submit step read back ``value``.

    Backslash first, then double quote. VARS values are macro-expanded by the
    submit step, so a ``$`` that would start a macro (``$(``, ``$ENV(``, ...)
    becomes ``$(DOLLAR)``; other ``$`` are literal there and stay as they are
    (``$(DOLLAR)$(DOLLAR)`` would expand to ``$$(DOLLAR)``, not ``$$``). CR and
    LF cannot be written (the DAG file is line based) and ``$$(`` cannot pass
    at all: callers refuse both earlier (``annotations``).
    """
    if "\n" in value or "\r" in value:
        raise ValueError(f"a VARS value cannot contain a newline: {value!r}")
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + MACRO_DOLLAR.sub("$(DOLLAR)", out) + '"'


def render_vars(node: str, pairs: Iterable[tuple[str, str]], raw: frozenset = frozenset()) -> str:
    """A VARS line; names in ``raw`` are written unescaped (ours, holding only
    generated file names and ``$(Process)``, which must expand)."""
    return f"VARS {node} " + " ".join(
        f'{k}="{v}"' if k in raw else f"{k}={vars_value(v)}" for k, v in pairs)


def node_vars(plan, node, pack: str) -> list[tuple[str, str]]:
    """The per-node macros our submit description uses (``pack``: the payload
    pack file holding the node's payload)."""
    inputs = [pack] + [f for v in node.inputs for f in plan.files_of(v)]
    if node.mode == "single":
        outputs = [f for files in node.outputs.values() for f in files]
    else:  # one file per proc: the submit step expands $(Process) for each
        outputs = [names.proc_result_file(node.name, "$(Process)")]
    return [(INPUTS_MACRO, ",".join(inputs)), (OUTPUTS_MACRO, ",".join(outputs)),
            (PAYLOAD_MACRO, pack)]


def submit_files(plan) -> dict:
    """node name -> (submit file name, extra commands, queue count).

    Nodes whose submit settings are equal share a file: ``<name>.sub`` for
    the plain one, ``<name>-<hash>.sub`` for each other set of settings.
    """
    out = {}
    for node in plan.nodes.values():
        extra, procs = node.settings.submit, node.procs
        if not extra and procs == 1:
            fname = names.submit_file(plan.name)
        else:
            h = sha(repr((extra, procs)))[:8]
            fname = f"{plan.name}-{h}.sub"
        out[node.name] = (fname, extra, procs)
    return out


def _node_lines(node, submit: str, done: bool, vars_: list) -> list:
    s = node.settings
    n = node.name
    lines = [f"JOB {n} {submit}" + (" DONE" if done else ""), render_vars(n, vars_, OUR_MACROS)]
    if s.vars:
        lines.append(render_vars(n, s.vars))
    if s.retry:
        lines.append(f"RETRY {n} {s.retry}" + (
            f" UNLESS-EXIT {s.retry_unless_exit}" if s.retry_unless_exit is not None else ""))
    if s.priority:
        lines.append(f"PRIORITY {n} {s.priority}")
    if s.category:
        lines.append(f"CATEGORY {n} {s.category}")
    if s.abort_dag_on:
        code, ret = s.abort_dag_on
        lines.append(f"ABORT-DAG-ON {n} {code}" + (f" RETURN {ret}" if ret is not None else ""))
    if s.pre:
        lines.append(f"SCRIPT PRE {n} {s.pre}")
    if s.post:
        lines.append(f"SCRIPT POST {n} {s.post}")
    return lines


def dag_files(name: str, dag) -> dict:
    """The DAG-level files the settings ask for: {"config": ..., "dot": ..., ...}."""
    out = {}
    if dag.config:
        out["config"] = f"{name}.config"
    if dag.dot:
        out["dot"] = f"{name}.dot"
    if dag.node_status_interval is not None:
        out["status"] = f"{name}.status"
    if dag.jobstate_log:
        out["jobstate"] = f"{name}.jobstate.log"
    return out


def render_dag(plan, *, packs: dict, submits: dict | None = None,
               done: Iterable[str] = (), dag=None) -> str:
    """The DAG file text. ``packs``: node name -> its payload pack file;
    ``submits``: from :func:`submit_files`; nodes in ``done`` are written
    ``JOB ... DONE``; ``dag``: DagSettings."""
    dag = dag or DagSettings()
    submits = submits if submits is not None else submit_files(plan)
    done = set(done)
    n = len(plan.nodes)
    lines = [
        f"# dask-condordag workflow {plan.name}: {n} node{'s' if n != 1 else ''}",
        f"# run it with:  condor_submit_dag {names.dag_file(plan.name)}"
        f"   (or: dask-condordag run <this directory>)",
        "# Generated: edit the Python code that made it, not this file.",
        "",
    ]
    files = plan.files
    for node in plan.nodes.values():
        s = node.settings
        if node.mode == "single" and not (s.vars or s.retry or s.priority or s.category or
                                          s.abort_dag_on or s.pre or s.post) \
                and not plan.data and not plan.listed:
            # the common node, without the general machinery (same lines)
            n = node.name
            pack = packs[n]
            ins = ",".join([pack, *(f for v in node.inputs for f in files[v])])
            outs = ",".join(f for fs in node.outputs.values() for f in fs)
            lines.append(f"JOB {n} {submits[n][0]}" + (" DONE" if n in done else ""))
            lines.append(f'VARS {n} {INPUTS_MACRO}="{ins}" {OUTPUTS_MACRO}="{outs}" '
                         f'{PAYLOAD_MACRO}="{pack}"')
            continue
        lines += _node_lines(node, submits[node.name][0], node.name in done,
                             node_vars(plan, node, packs[node.name]))
    edges = [(node.name, node.parents) for node in plan.nodes.values() if node.parents]
    if edges:
        lines.append("")
        for child, parents in edges:
            lines.append(f"PARENT {' '.join(parents)} CHILD {child}")
    files = dag_files(plan.name, dag)
    tail = [f"MAXJOBS {cat} {m}" for cat, m in dag.maxjobs]
    if "config" in files:
        tail.append(f"CONFIG {files['config']}")
    if "dot" in files:
        tail.append(f"DOT {files['dot']}")
    if "status" in files:
        tail.append(f"NODE_STATUS_FILE {files['status']} {dag.node_status_interval}")
    if "jobstate" in files:
        tail.append(f"JOBSTATE_LOG {files['jobstate']}")
    if tail:
        lines += [""] + tail
    return "\n".join(lines) + "\n"


def render_config(dag) -> str:
    """The CONFIG file of DAGMan knobs."""
    return "# DAGMan configuration for this workflow (dask-condordag dag_config)\n" + "".join(
        f"{k} = {v}\n" for k, v in dag.config)


def render_submit(*, python: str, extra: tuple = (), queue: int = 1, delivery=()) -> str:
    """A submit description (``python``: absolute path; ``extra``: the node's own
    commands from annotations; ``queue``: procs per node; ``delivery``: the
    (command, value) pairs of the delivery mode, ``delivery.submit_commands``,
    which replace the defaults below or are added before ``output``)."""
    out, err = names.log_files("$(JOB)")
    commands = [
        ("universe", "vanilla"),
        ("executable", python),
        ("transfer_executable", "false"),
        ("arguments", f'"{names.WORKER} {WORKER_ARGS}"'),
        ("should_transfer_files", "YES"),
        ("when_to_transfer_output", "ON_EXIT"),
        ("preserve_relative_paths", "true"),
        ("transfer_input_files", f"{names.WORKER_TRANSFER},$({INPUTS_MACRO})"),
        ("transfer_output_files", f"$({OUTPUTS_MACRO})"),
        ("output", out + (".$(Process)" if queue > 1 else "")),
        ("error", err + (".$(Process)" if queue > 1 else "")),
        ("My.DaskCondorDagNode", '"$(JOB)"'),
    ]
    if delivery:
        mode = dict(delivery)
        added = [(k, v) for k, v in delivery if k not in {c for c, _ in commands}]
        commands = [(k, mode.get(k, v)) for k, v in commands]
        at = [k for k, _ in commands].index("output")
        commands[at:at] = added
    own = {k.lower() for k, _ in commands}
    extras = [(k, v) for k, v in extra if k.lower() not in own]
    commands = [(k, dict((kk.lower(), vv) for kk, vv in extra).get(k.lower(), v))
                for k, v in commands] + extras
    width = max(len(k) for k, _ in commands)
    body = "\n".join(f"{k:<{width}} = {v}" for k, v in commands)
    return (
        "# dask-condordag submit description, shared by the nodes of the DAG\n"
        "# whose settings are equal. Per-node files come from the DAG's VARS;\n"
        "# generated, do not edit.\n"
        f"{body}\nqueue{f' {queue}' if queue > 1 else ''}\n"
    )
