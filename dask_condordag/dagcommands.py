"""DAG commands, one function per keyword: what each line of a DAG file means.

Data
    In: the reader's state (``dagfile._Builder``: the nodes read so far as
    dicts, the edges, the ``MAXJOBS`` throttles, the DAG-level files, and
    the helpers that check a token and raise a ``DagSyntaxError`` naming
    ``file:line``) and one line's tokens (``daglex.tokens``). Out: that state
    changed. :data:`COMMANDS` maps each keyword we accept (upper case, ``-``
    as ``_``) to its function; ``dagfile`` dispatches on it.

Policy
    * Each function follows its parse function in the DAGMan 25.x parser
      (HTCondor source ``src/condor_utils/dag_parser.cpp``,
      ``dag_commands.cpp``) and its error messages: ``JOB`` (``NOOP``,
      ``DONE``, ``DIR``), ``PARENT ... CHILD``, ``VARS`` (``PREPEND`` only),
      ``RETRY [UNLESS-EXIT]``, ``PRIORITY``, ``CATEGORY``, ``MAXJOBS``,
      ``ABORT-DAG-ON [RETURN]``, ``SCRIPT [DEFER] [DEBUG] PRE|POST``,
      ``DONE``, ``CONFIG``, ``DOT``, ``NODE_STATUS_FILE``, ``JOBSTATE_LOG``.
    * Stricter than DAGMan where it helps us (see ``dagfile``): a node must
      have an earlier ``JOB`` line; what we cannot honour (inline submit
      descriptions, ``VARS APPEND``, ``SCRIPT HOLD``, ``ALL_NODES`` where one
      node is meant) is refused, never ignored.
    * ``ALL_NODES`` stands for every node read so far in the commands that
      take it here (``PARENT``/``CHILD``, ``VARS``, ``RETRY``, ``PRIORITY``,
      ``CATEGORY``, ``ABORT-DAG-ON``, ``SCRIPT``); ``DONE`` names one node.

Example::

    >>> from dask_condordag.dagfile import parse_dag
    >>> dag = parse_dag("JOB a a.sub\\nRETRY ALL_NODES 2 UNLESS-EXIT 3\\n")
    >>> dag.nodes["a"].retry, dag.nodes["a"].retry_unless_exit
    (2, 3)
    >>> COMMANDS["ABORT_DAG_ON"] is cmd_abort_dag_on
    True
"""

from __future__ import annotations

import re

__all__ = ["COMMANDS"]

_MACRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def cmd_job(b, toks: list[str]) -> None:
    """``JOB <node> <submit file> [DIR <dir>] [NOOP] [DONE]``: a new node."""
    if len(toks) < 2:
        raise b.error("missing node name")
    name = toks[1]
    b.check_node_name(name)
    if len(toks) < 3 or not toks[2]:
        raise b.error("no submit description provided")
    submit = toks[2]
    if submit.startswith("{") or submit.startswith("@="):
        raise b.error("inline submit descriptions are not supported")
    if name in b.nodes:
        raise b.error(f"duplicate node name {name!r}")
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
                raise b.error("no directory path provided for DIR")
            d["dir"] = toks[k + 1]
            k += 1
        else:
            raise b.error(f"unexpected token {toks[k]!r}")
        k += 1
    b.nodes[name] = d


def cmd_parent(b, toks: list[str]) -> None:
    """``PARENT <nodes> CHILD <nodes>``: an edge from each parent to each child."""
    ups = [t.upper() for t in toks]
    if "CHILD" not in ups[1:]:
        raise b.error("missing CHILD specifier")
    c = ups.index("CHILD", 1)
    parents, children = toks[1:c], toks[c + 1:]
    if not parents:
        raise b.error("no parent node(s) specified")
    if not children:
        raise b.error("no children node(s) specified")

    def expand(names: list[str]) -> dict[str, None]:
        out: dict[str, None] = {}  # an ordered set: a wide line stays linear
        for nm in names:
            if nm.upper() == "CHILD":
                raise b.error("CHILD given twice")
            for d in b.targets(nm):
                out[d["name"]] = None
        return out

    ps, cs = expand(parents), expand(children)
    for p in ps:
        if p in cs:
            raise b.error(f"node {p!r} cannot be its own parent")
    for ch in cs:
        b.parents.setdefault(ch, {}).update(ps)
    for p in ps:
        b.children.setdefault(p, {}).update(cs)


def cmd_vars(b, toks: list[str]) -> None:
    """``VARS <node> [PREPEND] key="value" ...``: macros for the node's submit."""
    if len(toks) < 2:
        raise b.error("no node name specified")
    targets = b.targets(toks[1])
    k = 2
    if k < len(toks) and toks[k].upper() in ("PREPEND", "APPEND"):
        # Placement is recorded nowhere: render writes VARS without it and
        # relies on the default, PREPEND (HTCondor manual, DAGMan VARS: a
        # plain assignment in the submit description overrides the
        # value).  APPEND would change precedence, so refuse it.
        if toks[k].upper() == "APPEND":
            raise b.error("VARS APPEND is not supported (only the default PREPEND)")
        k += 1
    pairs: list[tuple[str, str]] = []
    for t in toks[k:]:
        if "=" not in t:
            raise b.error(f"non key=value token {t!r}")
        key, val = t.split("=", 1)
        if not val:
            # dag_parser.cpp ParseVars: "Invalid key=value pair: Missing value"
            raise b.error(f"missing value for {key!r}")
        if key.startswith("+") and len(key) > 1:
            key = "My." + key[1:]
        base = key[3:] if key.lower().startswith("my.") else key
        if not _MACRO_NAME.match(base):
            raise b.error(f"invalid macro name {key!r}")
        if key.lower().startswith("queue"):
            raise b.error(f"illegal variable name {key!r}: cannot begin with 'queue'")
        pairs.append((key, val))
    if not pairs:
        raise b.error("no key=value pairs specified")
    for d in targets:
        d["vars"].extend(pairs)


def _keyword_int(b, toks: list[str], keyword: str, missing: str, what: str, **bounds):
    """The optional ``<keyword> <int>`` after a command's three tokens (None
    when absent), as RETRY's UNLESS-EXIT and ABORT-DAG-ON's RETURN take it."""
    if len(toks) <= 3:
        return None
    if toks[3].upper() != keyword:
        raise b.error(f"unexpected token {toks[3]!r}")
    if len(toks) < 5:
        raise b.error(missing)
    value = b.int_(toks[4], what, **bounds)
    b.no_more(toks, 5)
    return value


def cmd_retry(b, toks: list[str]) -> None:
    """``RETRY <node> <n> [UNLESS-EXIT <code>]``."""
    if len(toks) < 3:
        raise b.error("usage: RETRY <node> <max retries> [UNLESS-EXIT <code>]")
    n = b.int_(toks[2], "max retry value", lo=0)
    unless = _keyword_int(b, toks, "UNLESS-EXIT", "UNLESS-EXIT missing exit code",
                          "UNLESS-EXIT code")
    for d in b.targets(toks[1]):
        d["retry"] = n
        d["retry_unless_exit"] = unless


def cmd_priority(b, toks: list[str]) -> None:
    """``PRIORITY <node> <value>``."""
    if len(toks) < 3:
        raise b.error("usage: PRIORITY <node> <value>")
    p = b.int_(toks[2], "priority value")
    b.no_more(toks, 3)
    for d in b.targets(toks[1]):
        d["priority"] = p


def cmd_category(b, toks: list[str]) -> None:
    """``CATEGORY <node> <name>`` (throttled by ``MAXJOBS``)."""
    if len(toks) < 3:
        raise b.error("usage: CATEGORY <node> <name>")
    b.no_more(toks, 3)
    for d in b.targets(toks[1]):
        d["category"] = toks[2]


def cmd_maxjobs(b, toks: list[str]) -> None:
    """``MAXJOBS <category> <n>``."""
    if len(toks) < 3:
        raise b.error("usage: MAXJOBS <category> <value>")
    b.maxjobs[toks[1]] = b.int_(toks[2], "throttle limit", lo=0)
    b.no_more(toks, 3)


def cmd_abort_dag_on(b, toks: list[str]) -> None:
    """``ABORT-DAG-ON <node> <status> [RETURN <code>]``."""
    if len(toks) < 3:
        raise b.error("usage: ABORT-DAG-ON <node> <status> [RETURN <code>]")
    status = b.int_(toks[2], "exit status")
    ret = _keyword_int(b, toks, "RETURN", "RETURN is missing value", "RETURN code",
                       lo=0, hi=255)
    for d in b.targets(toks[1]):
        d["abort_dag_on"] = (status, ret)


def cmd_script(b, toks: list[str], raw: str) -> None:
    """``SCRIPT [DEFER s t] [DEBUG f type] PRE|POST <node> <command...>``; ``raw``:
    the whole line, whose rest after the node name is the command."""
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
                raise b.error("DEFER needs <status> <time>")
            b.int_(toks[k + 1], "DEFER status")
            b.int_(toks[k + 2], "DEFER time")
            k += 3
        elif t == "DEBUG":
            if k + 2 >= len(toks):
                raise b.error("DEBUG needs <file> (STDOUT|STDERR|ALL)")
            if toks[k + 2].upper() not in ("STDOUT", "STDERR", "ALL"):
                raise b.error(f"unknown DEBUG output stream type {toks[k + 2]!r}")
            k += 3
        else:
            raise b.error("missing script type (PRE, POST, HOLD)")
    if kind is None:
        raise b.error("missing script type (PRE, POST, HOLD)")
    if kind == "HOLD":
        raise b.error("SCRIPT HOLD is not supported")
    if k >= len(toks):
        raise b.error("no node name specified")
    node = toks[k]
    # The command is the raw rest of the line (DagLexer::remain()).
    m = re.match(r"\s*(\S+\s+){%d}" % (k + 1), raw)
    rest = raw[m.end():].strip() if m else ""
    if not rest:
        raise b.error("no script specified")
    for d in b.targets(node):
        d[kind.lower()] = rest


def cmd_done(b, toks: list[str]) -> None:
    """``DONE <node>``: the node is not run again."""
    if len(toks) < 2:
        raise b.error("no node name specified")
    b.no_more(toks, 2)
    b.node(toks[1])["done"] = True


def cmd_config(b, toks: list[str]) -> None:
    """``CONFIG <file>``: DAGMan's configuration for this DAG (one file)."""
    if len(toks) < 2:
        raise b.error("no configuration file specified")
    b.no_more(toks, 2)
    if b.config is not None and b.config != toks[1]:
        raise b.error("a second, different CONFIG file")
    b.config = toks[1]


def cmd_dot(b, toks: list[str]) -> None:
    """``DOT <file> [UPDATE|DONT-UPDATE] [OVERWRITE|DONT-OVERWRITE] [INCLUDE <f>]``."""
    if len(toks) < 2:
        raise b.error("no file specified")
    k = 2
    while k < len(toks):
        t = toks[k].upper()
        if t == "INCLUDE":
            if k + 1 >= len(toks):
                raise b.error("missing INCLUDE header file")
            k += 1
        elif t not in ("UPDATE", "DONT-UPDATE", "OVERWRITE", "DONT-OVERWRITE"):
            raise b.error(f"unexpected token {toks[k]!r}")
        k += 1
    b.dot = toks[1]


def cmd_node_status_file(b, toks: list[str]) -> None:
    """``NODE_STATUS_FILE <file> [<seconds>] [ALWAYS-UPDATE]``."""
    if len(toks) < 2:
        raise b.error("no file specified")
    secs = 60  # dagman default minimum update time (manual: NODE_STATUS_FILE)
    for t in toks[2:]:
        if t.upper() == "ALWAYS-UPDATE":
            continue
        secs = b.int_(t, "minimum update time")
    b.node_status_file = (toks[1], secs)


def cmd_jobstate_log(b, toks: list[str]) -> None:
    """``JOBSTATE_LOG <file>``."""
    if len(toks) < 2:
        raise b.error("no file specified")
    b.no_more(toks, 2)
    b.jobstate_log = toks[1]


#: keyword (upper case, '-' as '_') -> its function; SCRIPT also takes the line itself
COMMANDS = {
    "JOB": cmd_job,
    "PARENT": cmd_parent,
    "VARS": cmd_vars,
    "RETRY": cmd_retry,
    "PRIORITY": cmd_priority,
    "CATEGORY": cmd_category,
    "MAXJOBS": cmd_maxjobs,
    "ABORT_DAG_ON": cmd_abort_dag_on,
    "SCRIPT": cmd_script,
    "DONE": cmd_done,
    "CONFIG": cmd_config,
    "DOT": cmd_dot,
    "NODE_STATUS_FILE": cmd_node_status_file,
    "JOBSTATE_LOG": cmd_jobstate_log,
}
