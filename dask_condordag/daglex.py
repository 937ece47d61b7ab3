"""The lexer of DAGMan's DAG files: one line into its tokens.

Data
    In: one line of a DAG (or rescue DAG) file, comments already dropped.
    Out: its tokens, quotes removed; ``key = value`` as one token
    ``key=value``.

Policy
    As ``DagLexer::next()`` in HTCondor's ``src/condor_utils/dag_parser.cpp``
    (25.x): tokens are split on spaces and tabs; a token may hold a single-
    or double-quoted section in which a backslash escapes the next
    character; blanks around the ``=`` of a pair are allowed. An unclosed
    quote or a pair without a value raises :class:`LexError`, which
    ``dagfile`` turns into a ``DagSyntaxError`` naming file and line.

Example::

    >>> tokens('VARS a x = "two words" y="3"')
    ['VARS', 'a', 'x=two words', 'y=3']
"""

from __future__ import annotations

__all__ = ["LexError", "tokens"]


class LexError(Exception):
    """A line that cannot be split into tokens (the parser adds file:line)."""


def tokens(line: str) -> list[str]:
    """Split one DAG line the way DagLexer::next() does (dag_parser.cpp).

    Quotes are removed and backslash escapes inside quotes resolved; a
    ``key = value`` pair (blanks around ``=`` allowed) is one token ``key=value``.
    """
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        tok: list[str] = []
        is_pair = False
        pair_complete = False
        while i < n:
            c = line[i]
            if c in " \t":
                j = i
                while j < n and line[j] in " \t":
                    j += 1
                next_is_eq = j < n and line[j] == "="
                if tok and ((not is_pair and not next_is_eq) or pair_complete):
                    i = j
                    break
                i = j
                continue
            if c == "=" and not is_pair:
                is_pair = True
                tok.append(c)
                i += 1
                continue
            if c in "\"'":
                quote = c
                i += 1
                while True:
                    if i >= n:
                        raise LexError("invalid quoting: no ending quote found")
                    c2 = line[i]
                    if c2 == "\\" and i + 1 < n:
                        tok.append(line[i + 1])
                        i += 2
                        continue
                    if c2 == "\\":
                        raise LexError("invalid quoting: no ending quote found")
                    if c2 == quote:
                        i += 1
                        break
                    tok.append(c2)
                    i += 1
                # a quoted section counts as (part of) a value
                tok.append("")
            else:
                tok.append(c)
                i += 1
            if is_pair:
                pair_complete = True
        if is_pair and not pair_complete:
            raise LexError("invalid key=value pair: no value")
        out.append("".join(tok))
    return out
