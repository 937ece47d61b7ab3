r"""Render a plan as DAGMan and submit-language text. Pure: strings in, strings out.

Data
    In: a :class:`~dask_condordag.plan.Plan` and the submit settings. Out: the
    lines of ``<name>.dag`` and the text of ``<name>.sub``.

Policy
    * One submit description is shared by every node whose submit settings are
      equal; what differs per node (its input and output files) travels in
      ``VARS`` macros we name and fill with names we generate -- never user data
      in ``arguments`` (see DESIGN.md: a quote there fails the submit step).
    * Files move with HTCondor's file transfer and ``preserve_relative_paths``,
      so the same workflow runs on pools without a shared file system: inputs
      arrive under ``nodes/``, ``results/``, ``data/`` in the job's scratch
      directory and ``results/<task>.pkl`` come back into ``results/``.
    * The interpreter is named by absolute path with ``transfer_executable =
      false`` (a copied venv interpreter loses its environment).

Example::

    >>> print(render_vars("n1", [("a", 'say "hi" \\ $5')]))
    VARS n1 a="say \"hi\" \\ $(DOLLAR)5"
"""

from __future__ import annotations

from collections.abc import Iterable

from . import names

__all__ = ["render_dag", "render_submit", "render_vars", "vars_value"]

INPUTS_MACRO = "dcd_inputs"
OUTPUTS_MACRO = "dcd_outputs"


def vars_value(value: str) -> str:
    """Quote a VARS value so DAGMan and the submit step read back ``value``.

    Backslash first, then double quote; ``$`` becomes ``$(DOLLAR)`` because
    VARS values are macro-expanded by the submit step. CR and LF cannot be
    written (the DAG file is line based): callers must refuse them earlier.
    """
    if "\n" in value or "\r" in value:
        raise ValueError(f"a VARS value cannot contain a newline: {value!r}")
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$(DOLLAR)")
    return f'"{out}"'


def render_vars(node: str, pairs: Iterable[tuple[str, str]]) -> str:
    return f"VARS {node} " + " ".join(f"{k}={vars_value(v)}" for k, v in pairs)


def node_vars(plan, node) -> list[tuple[str, str]]:
    """The per-node macros our submit description uses."""
    inputs = [node.payload] + [plan.file_of(v) for v in node.inputs]
    outputs = [names.result_file(t) for t in node.outputs]
    return [(INPUTS_MACRO, ",".join(inputs)), (OUTPUTS_MACRO, ",".join(outputs))]


def render_dag(plan, *, submit: str, done: Iterable[str] = ()) -> str:
    """The DAG file text. Nodes in ``done`` are written ``JOB ... DONE``."""
    done = set(done)
    n = len(plan.nodes)
    lines = [
        f"# dask-condordag workflow {plan.name}: {n} node{'s' if n != 1 else ''}",
        f"# run it with:  condor_submit_dag {names.dag_file(plan.name)}"
        f"   (or: dask-condordag run <this directory>)",
        "# Generated: edit the Python code that made it, not this file.",
        "",
    ]
    for node in plan.nodes.values():
        lines.append(f"JOB {node.name} {submit}" + (" DONE" if node.name in done else ""))
        lines.append(render_vars(node.name, node_vars(plan, node)))
    edges = [(node.name, node.parents) for node in plan.nodes.values() if node.parents]
    if edges:
        lines.append("")
        for child, parents in edges:
            lines.append(f"PARENT {' '.join(parents)} CHILD {child}")
    return "\n".join(lines) + "\n"


def render_submit(*, python: str) -> str:
    """The submit description shared by the nodes (``python``: absolute path)."""
    out, err = names.log_files("$(JOB)")
    commands = [
        ("universe", "vanilla"),
        ("executable", python),
        ("transfer_executable", "false"),
        ("arguments", f'"{names.WORKER} $(JOB)"'),
        ("should_transfer_files", "YES"),
        ("when_to_transfer_output", "ON_EXIT"),
        ("preserve_relative_paths", "true"),
        ("transfer_input_files", f"{names.WORKER},$({INPUTS_MACRO})"),
        ("transfer_output_files", f"$({OUTPUTS_MACRO})"),
        ("output", out),
        ("error", err),
        ("My.DaskCondorDagNode", '"$(JOB)"'),
    ]
    width = max(len(k) for k, _ in commands)
    body = "\n".join(f"{k:<{width}} = {v}" for k, v in commands)
    return (
        "# dask-condordag submit description, shared by the nodes of the DAG.\n"
        "# Per-node files come from the DAG's VARS; generated, do not edit.\n"
        f"{body}\nqueue\n"
    )
