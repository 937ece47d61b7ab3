"""Read DAGMan input files and write (partial) rescue DAG files.

Data
----
``parse_dag(text)`` returns a :class:`DagFile`: the nodes in file order
(:class:`DagNode`, one per ``JOB`` line, with everything other commands attach
to it), the edges as two maps (``parents``: child -> parents, ``children``:
parent -> children, each in first-seen order), the ``MAXJOBS`` throttles and the
DAG-level files (``CONFIG``, ``DOT``, ``NODE_STATUS_FILE``, ``JOBSTATE_LOG``).
Everything is frozen; ``apply_rescue`` returns a new ``DagFile``.

Policy
------
The reader follows the DAGMan 25.x parser (HTCondor source
``src/condor_utils/dag_parser.cpp``, ``dag_commands.cpp``):

* one command per line; leading/trailing whitespace is trimmed; a line whose
  first character is ``#`` (or that starts with ``//``) is a comment; there is
  **no** trailing-backslash continuation in the 25.x DAG parser (a ``\\`` at the
  end of a line is an ordinary character), so none here either;
* keywords are case-insensitive and ``-`` equals ``_`` in them
  (``ABORT-DAG-ON`` == ``abort_dag_on``); there is no ``NODE`` keyword in 25.x;
* tokens are split on spaces/tabs; a token may contain a single- or
  double-quoted section in which a backslash escapes the next character;
  ``key = "value"`` pairs may have blanks around ``=``;
* node names may not contain ``+`` or ``.`` and may not be ``PARENT``,
  ``CHILD`` or ``ALL_NODES`` (any case) - the manual's rule
  (docs/automated-workflows/dagman-introduction.rst);
* stricter than DAGMan where it helps us: a command naming a node that has no
  earlier ``JOB`` line is an error (DAGMan resolves names after the whole file
  is read), duplicate node names are errors, and only the commands listed in
  ``parse_dag`` are accepted (``SUBDAG``, ``SPLICE``, ``FINAL``, inline submit
  descriptions ... raise :class:`DagSyntaxError`).

Every error is a :class:`DagSyntaxError` whose message starts with
``file:line:`` and quotes the offending line.

Rescue files: DAGMan 25.x writes a *partial* rescue DAG by default: header
comments, then for every node in file order ``DONE name`` if it finished and
``RETRY name N [UNLESS-EXIT c]`` if it has retries (``render_rescue``, with
where they are kept, in ``dagrescue.py``; re-exported here).  It is read
together with the original DAG file (``apply_rescue``). The lexer, one line
into tokens, is ``daglex.py``; what each command means, one function per
keyword, is ``dagcommands.py``.

Example
-------
>>> dag = parse_dag('JOB a a.sub\\nJOB b a.sub\\nVARS b x="1"\\nPARENT a CHILD b\\n')
>>> dag.parents["b"], dag.nodes["b"].vars
(('a',), (('x', '1'),))
>>> from datetime import datetime, timezone
>>> text = render_rescue("w.dag", ["a"], ["b"], 2, datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
>>> sorted(n for n, v in apply_rescue(dag, text, "w.dag.rescue001").nodes.items() if v.done)
['a']
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .dagcommands import COMMANDS
from .daglex import LexError, tokens
from .dagrescue import (  # noqa: F401  (part of this module's API: see __all__)
    RESCUE_DAG_VERSION, newest_rescue, next_rescue_path, render_rescue, rescue_files,
)

__all__ = [
    "DagSyntaxError",
    "DagNode",
    "DagFile",
    "parse_dag",
    "apply_rescue",
    "rescue_files",
    "newest_rescue",
    "next_rescue_path",
    "render_rescue",
    "RESCUE_DAG_VERSION",
]

_RESERVED = {"PARENT", "CHILD", "ALL_NODES"}
_ILLEGAL_NODE_CHARS = "+."


class DagSyntaxError(ValueError):
    """A DAG (or rescue) file line that cannot be read; the message names file:line."""


@dataclass(frozen=True)
class DagNode:
    name: str
    submit: str
    dir: str | None = None
    noop: bool = False
    done: bool = False
    vars: tuple[tuple[str, str], ...] = ()
    retry: int = 0
    retry_unless_exit: int | None = None
    priority: int = 0
    category: str | None = None
    abort_dag_on: tuple[int, int | None] | None = None
    pre: str | None = None
    post: str | None = None


@dataclass(frozen=True)
class DagFile:
    nodes: dict[str, DagNode]
    parents: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]]
    maxjobs: dict[str, int]
    config: str | None = None
    dot: str | None = None
    node_status_file: tuple[str, int] | None = None
    jobstate_log: str | None = None


# --------------------------------------------------------------------------- parser


class _Builder:
    """The state of one read: nodes as dicts (frozen by ``build``), edges,
    throttles, DAG-level files; the checks the commands of ``dagcommands``
    use, each raising a DagSyntaxError naming ``file:line``; the driver."""

    def __init__(self, filename: str):
        self.filename = filename
        self.nodes: dict[str, dict] = {}
        # child -> {parent: None}, parent -> {child: None}: ordered sets, so
        # that a fan-in of 10,000 on one PARENT line is read in linear time
        self.parents: dict[str, dict[str, None]] = {}
        self.children: dict[str, dict[str, None]] = {}
        self.maxjobs: dict[str, int] = {}
        self.config: str | None = None
        self.dot: str | None = None
        self.node_status_file: tuple[str, int] | None = None
        self.jobstate_log: str | None = None
        self.lineno = 0
        self.line = ""

    # errors --------------------------------------------------------------
    def error(self, msg: str) -> DagSyntaxError:
        return DagSyntaxError(f"{self.filename}:{self.lineno}: {msg}: {self.line.strip()!r}")

    # helpers -------------------------------------------------------------
    def int_(self, tok: str, what: str, lo: int | None = None, hi: int | None = None) -> int:
        if not re.fullmatch(r"[+-]?\d+", tok):
            raise self.error(f"invalid {what} {tok!r} (must be an integer)")
        v = int(tok)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.error(f"{what} {v} out of range")
        return v

    def node(self, name: str) -> dict:
        if name.upper() == "ALL_NODES":
            raise self.error("ALL_NODES is not supported here")
        if name not in self.nodes:
            raise self.error(f"node {name!r} has no earlier JOB line")
        return self.nodes[name]

    def targets(self, name: str) -> list[dict]:
        if name.upper() == "ALL_NODES":
            return list(self.nodes.values())
        return [self.node(name)]

    def no_more(self, toks: list[str], k: int) -> None:
        if len(toks) > k:
            raise self.error(f"unexpected token {toks[k]!r}")

    def check_node_name(self, name: str) -> None:
        if name.upper() in _RESERVED:
            raise self.error(f"node name {name!r} is a reserved word")
        bad = [c for c in name if c in _ILLEGAL_NODE_CHARS]
        if bad:
            raise self.error(f"node name {name!r} contains illegal character {bad[0]!r}")

    # driver --------------------------------------------------------------
    def feed(self, text: str, allowed: set[str] | None = None) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            self.lineno, self.line = lineno, raw
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith("//"):
                continue
            try:
                toks = tokens(line)
            except LexError as e:
                raise self.error(str(e)) from None
            kw = toks[0].upper().replace("-", "_")
            if allowed is not None and kw not in allowed:
                raise self.error(f"{toks[0]!r} is not allowed in a rescue file")
            command = COMMANDS.get(kw)
            if command is None:
                raise self.error(f"{toks[0]!r} is not a supported DAG command")
            if kw == "SCRIPT":  # its command line is the raw rest of the line
                command(self, toks, line)
            else:
                command(self, toks)

    def build(self) -> DagFile:
        nodes = {n: DagNode(**{**d, "vars": tuple(d["vars"])}) for n, d in self.nodes.items()}
        return DagFile(
            nodes=nodes,
            parents={k: tuple(v) for k, v in self.parents.items()},
            children={k: tuple(v) for k, v in self.children.items()},
            maxjobs=dict(self.maxjobs),
            config=self.config,
            dot=self.dot,
            node_status_file=self.node_status_file,
            jobstate_log=self.jobstate_log,
        )


def parse_dag(text: str, filename: str = "<dag>") -> DagFile:
    """Parse the text of a DAG input file; raise DagSyntaxError naming file:line."""
    b = _Builder(filename)
    b.feed(text)
    return b.build()


def apply_rescue(dag: DagFile, text: str, filename: str = "<rescue>") -> DagFile:
    """Return a copy of ``dag`` with the state of a partial rescue file applied.

    A partial rescue file (dag.cpp WriteNodeToRescue) holds only comments,
    ``DONE node`` and ``RETRY node N [UNLESS-EXIT c]`` lines; DAGMan parses it
    after the original file, so its RETRY lines replace the original retry
    settings.  Any other command is rejected; a DONE for an unknown node is
    an error (DAGMAN_USE_STRICT default).
    """
    b = _Builder(filename)
    b.nodes = {
        n: {**dataclasses.asdict(v), "vars": list(v.vars)} for n, v in dag.nodes.items()
    }
    b.feed(text, allowed={"DONE", "RETRY"})
    nodes = {n: DagNode(**{**d, "vars": tuple(d["vars"])}) for n, d in b.nodes.items()}
    return dataclasses.replace(dag, nodes=nodes)
