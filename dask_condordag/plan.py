"""Turn a read graph into a plan: DAG nodes, their files, edges. Pure, no I/O.

Data
    In: a :class:`~dask_condordag.graph.Graph`. Out: a :class:`Plan` -- DAG
    nodes (each a group of one or more tasks, with the value names it reads
    from outside and the result files it writes), large constants to write
    once, and what each requested key resolves to.

Policy
    * Names are content-addressed. A task's token hashes its function (see
      ``tokens``), its literal arguments and the tokens of what it reads; its
      name is ``<readable prefix from the key>_<16 hex digits>``. The same
      script run in two processes gives the same names even though dask's keys
      are random; two keys with identical content (an impure call repeated)
      are told apart by their position in the graph's deterministic order.
      Names are valid DAGMan node names: ``[A-Za-z0-9_-]`` only.
    * ``DataNode``\\ s and aliases never become jobs. A constant whose
      ``dask.sizeof`` is at most ``inline_limit`` bytes (default 64 KiB)
      travels inside the payload of each node that uses it; a larger one is
      written once to ``data/`` and transferred to the nodes that need it.
      Aliases resolve to their target's value.
    * A node is a group of tasks. By default (``group="auto"``) the
      ``grouping`` pass chooses the groups by the cost model (``cost``);
      ``group="none"`` makes every task its own node; ``group="chains"`` puts
      each linear chain of tasks into one node. A node of several tasks runs
      them in dependency order in one job and writes only the values read
      outside it or requested.
    * A task whose function reads a global that cannot be hashed (see
      ``tokens``) gets a token unique to this compile, so it *always reruns*;
      so does every task that reads its value. ``Plan.reruns`` says why, per
      task name (the manifest and ``dask-condordag inspect`` show it);
      ``Plan.stable`` holds the token such a task (or large constant) would
      have without the compile's nonce, for naming the default workflow folder.
    * This module names tasks and constants and checks the options; the rest
      is in its own rooms: ``planwalk`` (one task's expression renamed,
      inlined and tokenized), ``plannodes`` (tasks into nodes, files and
      edges), ``plangroups`` (which tasks share a node: the glue to
      ``grouping``), ``plandata`` (the plan's frozen classes, re-exported
      here).

Example::

    >>> from dask_condordag._compat import Task, TaskRef
    >>> from operator import add
    >>> from dask_condordag.graph import read_graph
    >>> g = read_graph({"x": 1, "y": Task("y", add, TaskRef("x"), 10)}, ["y"])
    >>> p = make_plan(g, name="demo")
    >>> [node] = p.nodes.values()
    >>> node.name[:2], len(node.name)          # readable prefix, 16 hex digits
    ('y_', 18)
    >>> node.tasks[0].expr[2]                  # the small constant x is inlined
    ((0, 1), (0, 10))
"""

from __future__ import annotations

from dask.sizeof import sizeof
from dask.utils import key_split

from . import names
from .exceptions import PlanError
from .annotations import node_settings, planner_hints
from .config import option
from .cost import CostModel
from .graph import Call, Const, Graph, Link
# the plan's classes are defined in plandata and are part of this module's API (__all__)
from .plandata import UNANNOTATED, Output, Plan, PlannedData, PlannedNode, PlannedTask
from .plannodes import grouped_nodes, one_node_per_task
from .planwalk import Walk
from .settings import NodeSettings
from .tokens import Tokenizer, sha

__all__ = ["PlannedTask", "PlannedData", "PlannedNode", "Output", "Plan", "make_plan"]

GROUPINGS = ("auto", "none", "chains")


def make_plan(graph: Graph, *, name: str, inline_limit: int | None = None,
              group: str | None = None, arg_limit: int | None = None,
              cost=None) -> Plan:
    """Plan ``graph`` (see the module docstring).

    ``group``: ``"auto"`` groups by the cost model (``grouping``); ``cost`` is
    a :class:`~dask_condordag.cost.CostModel`, or a function of the plan's
    ``(outputs, stable)`` returning one (so a caller can read the records of
    the workflow directory those name); ``None``: the defaults.
    ``"none"`` makes every task its own node; ``"chains"`` puts each
    linear chain of tasks (a task whose only dependent is the next one, with
    equal annotations, not itself requested) into one node. Tasks annotated
    with a ``cluster`` name become one ``queue N`` node per name; a task with
    ``processes=N`` is one ``queue N`` node. A constant passed directly as
    an argument and larger than ``arg_limit`` bytes is refused: it would be
    copied into every payload that uses it. Left out (None), the three are
    the configured options (``config.option``).
    """
    inline_limit = option("inline_limit") if inline_limit is None else inline_limit
    group = option("group") if group is None else group
    arg_limit = option("arg_limit") if arg_limit is None else arg_limit
    if group not in GROUPINGS:
        raise PlanError(f"group={group!r} is not one of {GROUPINGS}")
    if not names.valid_workflow_name(name):
        raise PlanError(
            f"workflow name {name!r} is not usable: use letters, digits, '_' and '-' "
            "(it names the DAG file and is passed to DAGMan)"
        )
    tok = Tokenizer()
    value_of: dict = {}  # key -> ("lit", value) | ("name", value_name)
    token_of: dict = {}  # key -> token (for Const and Call)
    tasks: dict = {}  # key -> PlannedTask
    orders: dict = {}  # key -> value names it must wait for without reading
    settings: dict = {}  # key -> NodeSettings (only tasks with annotations)
    data: dict = {}
    taken: dict = {}  # name -> token, to catch truncation collisions
    seen_tokens: dict = {}  # token -> count, to tell identical contents apart
    reruns: dict = {}  # key -> why it always reruns (Const or Call)
    stable: _Stable = _Stable(token_of)  # tokens without the nonce, for keys in reruns
    hints: dict = {}  # key -> (duration or None, may group), only tasks that say so

    def unique_token(token: str) -> str:
        n = seen_tokens.get(token, 0)
        seen_tokens[token] = n + 1
        return token if n == 0 else sha(f"{token}#{n}")

    prefixes: dict = {}  # key_split result -> its DAGMan-safe form

    def name_for(key, token: str, prefix: str | None = None) -> str:
        if prefix is None:
            kp = _key_prefix(key)
            prefix = prefixes.get(kp)
            if prefix is None:
                prefix = prefixes[kp] = names.safe_prefix(kp)
        nm = f"{prefix}_{token[:16]}"
        if taken.get(nm, token) != token:  # 64-bit prefix collision: use all of it
            nm = f"{prefix}_{token}"
        taken[nm] = token
        return nm

    annotations = graph.annotations
    for key, node in graph.nodes.items():
        if isinstance(node, Link):
            continue
        if isinstance(node, Const):
            token = tok.value(node.value)
            token_of[key] = token
            why = tok.take_reasons()
            if why:
                reruns[key] = why
                stable.of[key] = stable.tok.value(node.value)
                stable.tok.take_reasons()
            try:
                size = sizeof(node.value)
            except Exception:  # sizeof is best effort
                size = 0
            if size <= inline_limit:
                value_of[key] = ("lit", node.value)
            else:
                dname = name_for(key, sha("data:" + token), prefix="data")
                if dname not in data:
                    data[dname] = PlannedData(dname, key, node.value)
                value_of[key] = ("name", dname)
            continue
        assert isinstance(node, Call)
        w = Walk(graph, value_of, token_of, tok, reruns)
        expr = w.rename(node.expr)
        why = tok.take_reasons()
        if w.big and w.big[0] > arg_limit:
            size, typ = w.big
            raise PlanError(
                f"key {key!r}: an argument of {size / 2**20:.1f} MiB ({typ}) is embedded in "
                f"the task itself (the limit is {arg_limit / 2**20:.0f} MiB, option "
                "arg_limit). Wrap it once with dask.delayed(obj) and pass that: it is then "
                "written once and transferred to the nodes that need it -- or create it "
                "inside a task")
        ann = annotations.get(key)
        s = node_settings(ann, key) if ann else UNANNOTATED
        if ann and ann.get("condor") and ("duration" in ann["condor"] or "group" in ann["condor"]):
            hints[key] = planner_hints(ann["condor"], key)
        if w.procid and not s.processes:
            raise PlanError(
                f"key {key!r}: dask_condordag.procid is used in its arguments but the task "
                "has no processes annotation; wrap the call in "
                "dask.annotate(condor={'processes': N})"
            )
        token = unique_token(sha("task:" + "".join(w.parts) + _settings_token(s)))
        token_of[key] = token
        tname = name_for(key, token)
        if why or w.upstream:
            reruns[key] = why + _upstream_reasons(w.upstream, value_of)
            stable.of[key] = stable.task(graph, value_of, node.expr, _settings_token(s))
        tasks[key] = PlannedTask(tname, key, expr, tuple(dict.fromkeys(w.reads)))
        if w.orders:
            orders[key] = tuple(dict.fromkeys(w.orders))
        if s is not UNANNOTATED and s != UNANNOTATED:  # a duration-only annotation: default
            settings[key] = s
        value_of[key] = ("name", tname)

    outputs = []
    for key in graph.keys:
        target = graph.resolve(key)
        kind, v = value_of[target]
        if kind == "lit":
            outputs.append(Output(key, "inline", value=v))
        elif v in data:
            outputs.append(Output(key, "data", name=v))
        else:
            outputs.append(Output(key, "task", name=v))
    outputs = tuple(outputs)
    stable_names = {value_of[k][1]: stable.of[k] for k in reruns if value_of[k][0] == "name"}

    model = None
    if group == "none" and not any(x.processes or x.cluster for x in settings.values()):
        nodes, task_node, files = one_node_per_task(tasks, settings, orders)
        listed: set = set()
    else:
        if group == "auto":
            model = cost(outputs, stable_names) if callable(cost) else (cost or CostModel())
        nodes, task_node, files, listed = grouped_nodes(tasks, settings, orders, graph, group,
                                                        name_for, model, hints)
    return Plan(name=name, nodes=nodes, data=data, outputs=outputs, task_node=task_node,
                files=files, listed=frozenset(listed),
                reruns={tasks[k].name: why for k, why in reruns.items() if k in tasks},
                stable=stable_names,
                durations={tasks[k].name: h[0] for k, h in hints.items() if h[0] is not None},
                cost=None if model is None else {
                    "job_overhead": model.job_overhead, "slots": model.slots,
                    "cores_per_node": model.cores_per_node,
                    "max_node_bytes": model.max_node_bytes})


class _Stable:
    """Tokens of the tasks that always rerun as they would be without the
    compile's nonce (the same in every process), computed on demand with a
    second tokenizer: ``of`` maps keys to them, ``[key]`` falls back to the
    real token for every other key."""

    def __init__(self, token_of: dict):
        self.token_of = token_of
        self.of: dict = {}
        self._tok = None

    @property
    def tok(self) -> Tokenizer:
        if self._tok is None:
            self._tok = Tokenizer(nonce="")
        return self._tok

    def __getitem__(self, key) -> str:
        got = self.of.get(key)
        return self.token_of[key] if got is None else got

    def task(self, graph, value_of, expr, settings: str) -> str:
        w = Walk(graph, value_of, self, self.tok, {})
        w.rename(expr)
        self.tok.take_reasons()
        return sha("task:" + "".join(w.parts) + settings)


def _upstream_reasons(upstream: list, value_of: dict) -> tuple:
    """``input NAME always reruns`` for the first few such inputs."""
    names_ = list(dict.fromkeys(
        value_of[k][1] if value_of[k][0] == "name" else f"constant {k!r}" for k in upstream))
    out = tuple(f"input {n} always reruns" for n in names_[:3])
    if len(names_) > 3:
        out += (f"... and {len(names_) - 3} more inputs that always rerun",)
    return out


def _settings_token(s: NodeSettings) -> str:
    """Settings that change what a task computes (so its name): the cluster
    shape. Scheduling settings (retries, priority, resources) do not."""
    if s.processes:
        return f"|processes={s.processes}"
    return ""


def _key_prefix(key) -> str:
    try:
        return str(key_split(key))
    except Exception:
        return str(key)
