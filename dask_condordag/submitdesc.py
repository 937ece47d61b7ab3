"""A small reader of the HTCondor submit language (what the local runner needs).

Data
----
``parse_submit(text)`` gives a :class:`SubmitDescription`: the assignments in
file order (``commands``, keys lowercased; ``+X`` and ``My.X`` become
``My.X`` with ``X`` as written) and the ``queue`` count.  ``expand`` turns it
into ``{key: value}`` after macro substitution; ``split_arguments``,
``split_file_list`` and ``parse_environment`` read the values of the commands
the runner uses.

Policy (checked against HTCondor 25.14 ``htcondor2.Submit`` and the source)
---------------------------------------------------------------------------
* a line ending in ``\\`` continues on the next line (the backslash is dropped,
  the next line's leading blanks too); lines starting with ``#`` are comments;
* only ``queue`` and ``queue N`` are supported (one, last); ``if``/``include``
  and itemdata forms raise :class:`SubmitSyntaxError` naming file:line;
* macros are lazy, as in condor_submit: a value is expanded with the *last*
  assignment of every name, except that a self-reference (``x = $(x) more``)
  is expanded when it is assigned; ``macros`` (DAGMan VARS, prepended) are
  assignments made before the file, so the file's own assignment wins;
* ``$(name)`` is case-insensitive; an undefined name expands to ``""``;
  ``$(name:default)`` gives ``default`` when undefined; ``$(DOLLAR)`` gives
  ``$`` and its result is not expanded again; ``$$(...)`` (match-time) and
  ``$F(...)``-style functions are left as written; a cycle raises
  :class:`SubmitSyntaxError` (condor_submit loops);
* arguments follow ``ArgList::AppendArgsV1WackedOrV2Quoted``
  (src/condor_utils/condor_arglist.cpp): a value starting with ``"`` is new
  syntax (``""`` is a literal ``"``; inside, single quotes group and ``''``
  inside a single-quoted section is a literal ``'``); otherwise old syntax
  (split on whitespace, ``\\"`` is ``"``).

Example
-------
>>> d = parse_submit('executable = /bin/echo\\narguments = "$(x) \\'b c\\'"\\nqueue 2\\n')
>>> d.queue_count, split_arguments(expand(d, {"x": "a"})["arguments"])
(2, ['a', 'b c'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

__all__ = [
    "SubmitSyntaxError",
    "SubmitDescription",
    "parse_submit",
    "expand",
    "expand_for_proc",
    "split_arguments",
    "split_file_list",
    "parse_environment",
    "whole_number",
]


class SubmitSyntaxError(ValueError):
    """A submit description that cannot be read; the message names file:line."""


@dataclass(frozen=True)
class SubmitDescription:
    commands: tuple[tuple[str, str], ...]
    queue_count: int = 1


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_QUEUE = re.compile(r"queue\b(.*)\Z", re.IGNORECASE | re.DOTALL)


def _norm_key(key: str) -> str:
    if key.startswith("+"):
        return "My." + key[1:]
    if key.lower().startswith("my."):
        return "My." + key[3:]
    return key.lower()


def parse_submit(text: str, filename: str = "<submit>") -> SubmitDescription:
    """Parse submit-description text (assignments + one ``queue [N]``)."""
    commands: list[tuple[str, str]] = []
    queue_count: int | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        raw = lines[i]
        i += 1
        line = raw.strip()
        # continuation: trailing backslash joins the next physical line
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if line.endswith("\\"):
            line = line[:-1].rstrip()

        def err(msg: str) -> SubmitSyntaxError:
            return SubmitSyntaxError(f"{filename}:{lineno}: {msg}: {raw.strip()!r}")

        if not line or line.startswith("#"):
            continue
        m = _QUEUE.match(line)
        if m and "=" not in line.split(None, 1)[0]:
            rest = m.group(1).strip()
            if queue_count is not None:
                raise err("only one queue statement is supported")
            if rest == "":
                queue_count = 1
            elif re.fullmatch(r"\d+", rest):
                queue_count = int(rest)
            else:
                raise err("unsupported queue statement (supported: 'queue' and 'queue N')")
            continue
        if queue_count is not None:
            raise err("statements after the queue statement are not supported")
        if "=" not in line:
            first = line.split(None, 1)[0].lower()
            if first in ("if", "elif", "else", "endif", "include", "error", "warning"):
                raise err(f"'{first}' statements are not supported")
            raise err("expected 'key = value' or 'queue [N]'")
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("+"):
            ok = bool(_KEY.match(key[1:]))
        else:
            ok = bool(_KEY.match(key))
        if not ok:
            raise err(f"invalid command name {key!r}")
        if key.lower().startswith("queue"):
            raise err(f"command name {key!r} may not begin with 'queue'")
        commands.append((_norm_key(key), value.strip()))
    return SubmitDescription(tuple(commands), 1 if queue_count is None else queue_count)


# --------------------------------------------------------------------------- macros

_DOLLAR_MARK = "\x00DOLLAR\x00"


def _find_macros(value: str):
    """Yield (start, end, name, default) for each ``$(name[:default])``."""
    i = 0
    n = len(value)
    while True:
        j = value.find("$(", i)
        if j < 0:
            return
        if j > 0 and value[j - 1] == "$":  # $$( ... ) is match-time, leave it
            i = j + 2
            continue
        k = j + 2
        m = re.match(r"[A-Za-z_][A-Za-z0-9_.]*", value[k:])
        if not m:
            i = j + 2
            continue
        name = value[k:k + m.end()]
        k += m.end()
        default = None
        if k < n and value[k] == ":":
            close = value.find(")", k)
            if close < 0:
                i = j + 2
                continue
            default = value[k + 1:close]
            k = close
        if k < n and value[k] == ")":
            yield j, k + 1, name, default
            i = k + 1
        else:
            i = j + 2


def _table(desc: SubmitDescription, macros: Mapping[str, str]) -> tuple[dict, dict]:
    """Lowercase-name -> raw value after all assignments (self-references resolved)."""
    table: dict[str, str] = {}
    for k, v in macros.items():
        table[k.lower()] = str(v)
    out_keys: dict[str, str] = {}
    for key, value in desc.commands:
        lk = key.lower()
        if any(name.lower() == lk for _, _, name, _ in _find_macros(value)):
            value = _subst(value, lambda nm, d: table.get(nm.lower(), d or "") if nm.lower() == lk else None)
        table[lk] = value
        out_keys[lk] = key
    return table, out_keys


def _subst(value: str, lookup) -> str:
    """Replace each macro for which lookup(name, default) is not None."""
    parts: list[str] = []
    last = 0
    for s, e, name, default in _find_macros(value):
        rep = lookup(name, default)
        if rep is None:
            continue
        parts.append(value[last:s])
        parts.append(rep)
        last = e
    parts.append(value[last:])
    return "".join(parts)


def _expand_value(value: str, table: dict[str, str], stack: tuple[str, ...] = ()) -> str:
    def lookup(name: str, default):
        ln = name.lower()
        if ln == "dollar":
            return _DOLLAR_MARK
        if ln not in table:
            return _expand_value(default, table, stack) if default is not None else ""
        if ln in stack:
            raise SubmitSyntaxError(
                "macro cycle: " + " -> ".join(stack + (ln,))
            )
        return _expand_value(table[ln], table, stack + (ln,))

    return _subst(value, lookup)


def expand(desc: SubmitDescription, macros: Mapping[str, str] | None = None) -> dict[str, str]:
    """Value of every command after macro expansion; ``macros`` act as prepended VARS."""
    table, out_keys = _table(desc, macros or {})
    result: dict[str, str] = {}
    for lk, key in out_keys.items():
        result[key] = _expand_value(table[lk], table, (lk,)).replace(_DOLLAR_MARK, "$")
    return result


def expand_for_proc(
    desc: SubmitDescription,
    macros: Mapping[str, str] | None,
    cluster: int,
    process: int,
) -> dict[str, str]:
    """``expand`` with the per-job macros condor_submit defines for ``queue N``.

    ``Cluster``/``ClusterId``, ``Process``/``ProcId``, ``Step`` (index within
    ``queue N``) and ``Row`` (0 without item data) are set; ``Item`` and
    ``Node`` stay undefined (empty).
    """
    m = dict(macros or {})
    m.update(
        Cluster=str(cluster), ClusterId=str(cluster),
        Process=str(process), ProcId=str(process),
        Step=str(process), Row="0",
    )
    return expand(desc, m)


# --------------------------------------------------------------------------- values


def _split_v2_raw(raw: str) -> list[str]:
    """condor_arglist.cpp split_args()."""
    args: list[str] = []
    buf: list[str] = []
    token = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            start = i
            i += 1
            token = True
            while True:
                if i >= n:
                    raise SubmitSyntaxError(f"unbalanced quote starting here: {raw[start:]}")
                if raw[i] == "'":
                    if i + 1 < n and raw[i + 1] == "'":
                        buf.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(raw[i])
                i += 1
        elif c in " \t\n\r":
            i += 1
            if token:
                args.append("".join(buf))
                buf, token = [], False
        else:
            buf.append(c)
            token = True
            i += 1
    if token:
        args.append("".join(buf))
    return args


def _v2_quoted_to_raw(value: str) -> str:
    """condor_arglist.cpp V2QuotedToV2Raw()."""
    s = value.lstrip()
    assert s.startswith('"')
    out: list[str] = []
    i, n = 1, len(s)
    while i < n:
        if s[i] == '"':
            if i + 1 < n and s[i + 1] == '"':
                out.append('"')
                i += 2
                continue
            rest = s[i + 1:]
            if rest.strip():
                raise SubmitSyntaxError(
                    "unexpected characters following double-quote (repeat a double-quote "
                    f"to escape it): {s[i:]!r}"
                )
            return "".join(out)
        out.append(s[i])
        i += 1
    raise SubmitSyntaxError(f"unterminated double-quote in {value!r}")


def whole_number(commands, key: str, default: int) -> int:
    """The submit command ``key`` (lower case; matched in any case) of
    ``commands`` -- ``(key, value)`` pairs, as ``SubmitDescription.commands``
    or ``expand(...).items()`` -- as a whole number; ``default`` when it is
    absent, empty or not a whole number (an expression only condor_submit
    or the negotiator evaluates).

    >>> whole_number([("Request_Cpus", " 4 "), ("priority", "$(p)")], "request_cpus", 1)
    4
    >>> whole_number([("priority", "$(p)")], "priority", 0)
    0
    """
    for k, v in commands:
        if k.lower() == key:
            try:
                return int(str(v).strip() or default)
            except ValueError:
                return default
    return default


def split_arguments(value: str) -> list[str]:
    """Split an ``arguments`` value (new syntax if it starts with ``"``, else old)."""
    if value.lstrip().startswith('"'):
        return _split_v2_raw(_v2_quoted_to_raw(value))
    # old syntax (V1 "wacked"): \" is a literal quote, a bare " is an error
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == '"':
            raise SubmitSyntaxError(f"found illegal unescaped double-quote: {value[i:]!r}")
        if c == "\\" and value[i + 1:i + 2] == '"':
            out.append('"')
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out).split()


def split_file_list(value: str) -> list[str]:
    """Comma-separated file list (transfer_input_files ...): trimmed, no empties."""
    return [p.strip() for p in value.split(",") if p.strip()]


def parse_environment(value: str) -> dict[str, str]:
    """``environment`` value: new syntax ``"A=1 B='x y'"``; old syntax ``A=1;B=2``."""
    if value.lstrip().startswith('"'):
        entries = _split_v2_raw(_v2_quoted_to_raw(value))
    else:
        entries = [e for e in value.split(";") if e.strip()]
    env: dict[str, str] = {}
    for e in entries:
        if "=" not in e:
            raise SubmitSyntaxError(f"environment entry {e!r} has no '='")
        k, v = e.split("=", 1)
        if not k:
            raise SubmitSyntaxError(f"environment entry {e!r} has no name")
        env[k] = v
    return env
