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
into tokens, is ``daglex.py``.

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
_MACRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
    def __init__(self, filename: str):
        self.filename = filename
        self.nodes: dict[str, dict] = {}
        self.parents: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
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

    # commands ------------------------------------------------------------
    def cmd_job(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("missing node name")
        name = toks[1]
        self.check_node_name(name)
        if len(toks) < 3 or not toks[2]:
            raise self.error("no submit description provided")
        submit = toks[2]
        if submit.startswith("{") or submit.startswith("@="):
            raise self.error("inline submit descriptions are not supported")
        if name in self.nodes:
            raise self.error(f"duplicate node name {name!r}")
        d = dict(name=name, submit=submit, dir=None, noop=False, done=False, vars=[],
                 retry=0, retry_unless_exit=None, priority=0, category=None,
                 abort_dag_on=None, pre=None, post=None)
        k = 3
        while k < len(toks):
            t = toks[k].upper()
            if t == "NOOP":
                d["noop"] = True
            elif t == "DONE":
                d["done"] = True
            elif t == "DIR":
                if k + 1 >= len(toks) or not toks[k + 1]:
                    raise self.error("no directory path provided for DIR")
                d["dir"] = toks[k + 1]
                k += 1
            else:
                raise self.error(f"unexpected token {toks[k]!r}")
            k += 1
        self.nodes[name] = d

    def cmd_parent(self, toks: list[str]) -> None:
        ups = [t.upper() for t in toks]
        if "CHILD" not in ups[1:]:
            raise self.error("missing CHILD specifier")
        c = ups.index("CHILD", 1)
        parents, children = toks[1:c], toks[c + 1:]
        if not parents:
            raise self.error("no parent node(s) specified")
        if not children:
            raise self.error("no children node(s) specified")

        def expand(names: list[str]) -> list[str]:
            out: list[str] = []
            for nm in names:
                if nm.upper() == "CHILD":
                    raise self.error("CHILD given twice")
                for d in self.targets(nm):
                    if d["name"] not in out:
                        out.append(d["name"])
            return out

        ps, cs = expand(parents), expand(children)
        for p in ps:
            for ch in cs:
                if p == ch:
                    raise self.error(f"node {p!r} cannot be its own parent")
                lst = self.parents.setdefault(ch, [])
                if p not in lst:
                    lst.append(p)
                lst = self.children.setdefault(p, [])
                if ch not in lst:
                    lst.append(ch)

    def cmd_vars(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no node name specified")
        targets = self.targets(toks[1])
        k = 2
        if k < len(toks) and toks[k].upper() in ("PREPEND", "APPEND"):
            # Placement is recorded nowhere: render writes VARS without it and
            # relies on the default, PREPEND (HTCondor manual, DAGMan VARS: a
            # plain assignment in the submit description overrides the
            # value).  APPEND would change precedence, so refuse it.
            if toks[k].upper() == "APPEND":
                raise self.error("VARS APPEND is not supported (only the default PREPEND)")
            k += 1
        pairs: list[tuple[str, str]] = []
        for t in toks[k:]:
            if "=" not in t:
                raise self.error(f"non key=value token {t!r}")
            key, val = t.split("=", 1)
            if not val:
                # dag_parser.cpp ParseVars: "Invalid key=value pair: Missing value"
                raise self.error(f"missing value for {key!r}")
            if key.startswith("+") and len(key) > 1:
                key = "My." + key[1:]
            base = key[3:] if key.lower().startswith("my.") else key
            if not _MACRO_NAME.match(base):
                raise self.error(f"invalid macro name {key!r}")
            if key.lower().startswith("queue"):
                raise self.error(f"illegal variable name {key!r}: cannot begin with 'queue'")
            pairs.append((key, val))
        if not pairs:
            raise self.error("no key=value pairs specified")
        for d in targets:
            d["vars"].extend(pairs)

    def cmd_retry(self, toks: list[str]) -> None:
        if len(toks) < 3:
            raise self.error("usage: RETRY <node> <max retries> [UNLESS-EXIT <code>]")
        n = self.int_(toks[2], "max retry value", lo=0)
        unless = None
        if len(toks) > 3:
            if toks[3].upper() != "UNLESS-EXIT":
                raise self.error(f"unexpected token {toks[3]!r}")
            if len(toks) < 5:
                raise self.error("UNLESS-EXIT missing exit code")
            unless = self.int_(toks[4], "UNLESS-EXIT code")
            self.no_more(toks, 5)
        for d in self.targets(toks[1]):
            d["retry"] = n
            d["retry_unless_exit"] = unless

    def cmd_priority(self, toks: list[str]) -> None:
        if len(toks) < 3:
            raise self.error("usage: PRIORITY <node> <value>")
        p = self.int_(toks[2], "priority value")
        self.no_more(toks, 3)
        for d in self.targets(toks[1]):
            d["priority"] = p

    def cmd_category(self, toks: list[str]) -> None:
        if len(toks) < 3:
            raise self.error("usage: CATEGORY <node> <name>")
        self.no_more(toks, 3)
        for d in self.targets(toks[1]):
            d["category"] = toks[2]

    def cmd_maxjobs(self, toks: list[str]) -> None:
        if len(toks) < 3:
            raise self.error("usage: MAXJOBS <category> <value>")
        self.maxjobs[toks[1]] = self.int_(toks[2], "throttle limit", lo=0)
        self.no_more(toks, 3)

    def cmd_abort_dag_on(self, toks: list[str]) -> None:
        if len(toks) < 3:
            raise self.error("usage: ABORT-DAG-ON <node> <status> [RETURN <code>]")
        status = self.int_(toks[2], "exit status")
        ret = None
        if len(toks) > 3:
            if toks[3].upper() != "RETURN":
                raise self.error(f"unexpected token {toks[3]!r}")
            if len(toks) < 5:
                raise self.error("RETURN is missing value")
            ret = self.int_(toks[4], "RETURN code", lo=0, hi=255)
            self.no_more(toks, 5)
        for d in self.targets(toks[1]):
            d["abort_dag_on"] = (status, ret)

    def cmd_script(self, toks: list[str], raw: str) -> None:
        # SCRIPT [DEFER status time] [DEBUG file type] PRE|POST|HOLD node cmd...
        k = 1
        kind = None
        while k < len(toks):
            t = toks[k].upper()
            if t in ("PRE", "POST", "HOLD"):
                kind = t
                k += 1
                break
            if t == "DEFER":
                if k + 2 >= len(toks):
                    raise self.error("DEFER needs <status> <time>")
                self.int_(toks[k + 1], "DEFER status")
                self.int_(toks[k + 2], "DEFER time")
                k += 3
            elif t == "DEBUG":
                if k + 2 >= len(toks):
                    raise self.error("DEBUG needs <file> (STDOUT|STDERR|ALL)")
                if toks[k + 2].upper() not in ("STDOUT", "STDERR", "ALL"):
                    raise self.error(f"unknown DEBUG output stream type {toks[k + 2]!r}")
                k += 3
            else:
                raise self.error("missing script type (PRE, POST, HOLD)")
        if kind is None:
            raise self.error("missing script type (PRE, POST, HOLD)")
        if kind == "HOLD":
            raise self.error("SCRIPT HOLD is not supported")
        if k >= len(toks):
            raise self.error("no node name specified")
        node = toks[k]
        # The command is the raw rest of the line (DagLexer::remain()).
        m = re.match(r"\s*(\S+\s+){%d}" % (k + 1), raw)
        rest = raw[m.end():].strip() if m else ""
        if not rest:
            raise self.error("no script specified")
        for d in self.targets(node):
            d[kind.lower()] = rest

    def cmd_done(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no node name specified")
        self.no_more(toks, 2)
        self.node(toks[1])["done"] = True

    def cmd_config(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no configuration file specified")
        self.no_more(toks, 2)
        if self.config is not None and self.config != toks[1]:
            raise self.error("a second, different CONFIG file")
        self.config = toks[1]

    def cmd_dot(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no file specified")
        k = 2
        while k < len(toks):
            t = toks[k].upper()
            if t == "INCLUDE":
                if k + 1 >= len(toks):
                    raise self.error("missing INCLUDE header file")
                k += 1
            elif t not in ("UPDATE", "DONT-UPDATE", "OVERWRITE", "DONT-OVERWRITE"):
                raise self.error(f"unexpected token {toks[k]!r}")
            k += 1
        self.dot = toks[1]

    def cmd_node_status_file(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no file specified")
        secs = 60  # dagman default minimum update time (manual: NODE_STATUS_FILE)
        for t in toks[2:]:
            if t.upper() == "ALWAYS-UPDATE":
                continue
            secs = self.int_(t, "minimum update time")
        self.node_status_file = (toks[1], secs)

    def cmd_jobstate_log(self, toks: list[str]) -> None:
        if len(toks) < 2:
            raise self.error("no file specified")
        self.no_more(toks, 2)
        self.jobstate_log = toks[1]

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
            if kw == "SCRIPT":
                self.cmd_script(toks, line)
                continue
            handler = getattr(self, "cmd_" + kw.lower(), None) if kw in _KEYWORDS else None
            if handler is None:
                raise self.error(f"{toks[0]!r} is not a supported DAG command")
            handler(toks)

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


_KEYWORDS = {
    "JOB", "PARENT", "VARS", "RETRY", "PRIORITY", "CATEGORY", "MAXJOBS", "ABORT_DAG_ON",
    "SCRIPT", "CONFIG", "DOT", "NODE_STATUS_FILE", "JOBSTATE_LOG", "DONE",
}


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
