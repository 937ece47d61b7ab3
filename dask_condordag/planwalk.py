"""One task's lowered expression walked for the plan: renamed, inlined, tokenized.

Data
    In: a task's lowered expression (``graph``: ``LIT``/``REF``/``CALL``/
    ``BUILD``/``DICT`` tuples, tags in ``names``) and what ``plan`` knows
    so far about the keys it reads (``value_of``: key -> ``("lit", value)``
    or ``("name", value name)``; ``token_of``: key -> token). Out, on the
    :class:`Walk`: the renamed expression, the value names it reads
    (``reads``) and waits for without reading (``orders``), the pieces of its
    token (``parts``), the keys read that always rerun (``upstream``),
    whether it uses ``procid`` and its largest embedded literal (``big``).

Policy
    * A reference to a constant small enough to inline becomes that literal;
      any other reference becomes a ``REF`` to its value name. The token
      pieces name a reference by the token of what it reads, not by its key,
      so names are content-addressed (``plan``).
    * ``dask_condordag.procid`` inside a literal becomes the ``PROC`` tag
      (:func:`lift_procid`), built per proc by the worker.
    * ``after=`` (``jobs._ordering``, ``jobs._call_after``) becomes edges
      without data (``orders``); the marker itself evaluates to None.
    * The size of each non-scalar literal is measured (``dask.sizeof``) so
      ``plan`` can refuse one too large to copy into every payload
      (``arg_limit``); a function the tokenizer cannot describe is a
      :class:`~dask_condordag.exceptions.PlanError`.

Example::

    >>> from operator import add
    >>> from dask_condordag._compat import Task, TaskRef
    >>> from dask_condordag.graph import read_graph
    >>> from dask_condordag.tokens import Tokenizer
    >>> g = read_graph({"x": 1, "y": Task("y", add, TaskRef("x"), 10),
    ...                 "z": Task("z", add, TaskRef("y"), TaskRef("x"))}, ["z"])
    >>> w = Walk(g, {"x": ("lit", 1), "y": ("name", "add_0123")}, {"x": "tx", "y": "ty"},
    ...          Tokenizer(), {})
    >>> w.rename(g.nodes["z"].expr)        # y read by name, the constant x inlined
    (2, <built-in function add>, ((1, 'add_0123'), (0, 1)), ())
    >>> w.reads, w.parts[1:]
    (['add_0123'], ['@ty', '@tx', ')'])
"""

from __future__ import annotations

from dask.sizeof import sizeof

from .exceptions import PlanError
from .jobs import _call_after, _ordering, contains_procid, procid
from .names import BUILD, CALL, DICT, LIT, PROC, REF
from .tokens import SCALARS

__all__ = ["Walk", "lift_procid"]


class Walk:
    """One walk over a lowered expression: references become value names,
    small constants are inlined, ``procid`` becomes the PROC tag, ordering-only
    markers become edges, and the token pieces are collected."""

    def __init__(self, graph, value_of, token_of, tok, reruns):
        self.graph, self.value_of, self.token_of, self.tok = graph, value_of, token_of, tok
        self.reruns = reruns  # key -> why it always reruns
        self.upstream: list = []  # keys read that always rerun
        self.reads: list = []
        self.orders: list = []
        self.parts: list = []
        self.procid = False
        self.big = None  # (bytes, type name) of the largest non-scalar literal

    def rename(self, expr):
        tag = expr[0]
        if tag == LIT:
            v = expr[1]
            if contains_procid(v):
                self.procid = True
                return self.rename(lift_procid(v))
            if type(v) not in SCALARS:
                try:
                    n = sizeof(v)
                except Exception:  # sizeof is best effort
                    n = 0
                if self.big is None or n > self.big[0]:
                    self.big = (n, type(v).__name__)
            self.parts.append(self.tok.value(v))
            return expr
        if tag == PROC:
            self.parts.append("procid")
            return expr
        if tag == REF:
            target = self.graph.resolve(expr[1])
            kind, v = self.value_of[target]
            self.parts.append("@" + self.token_of[target])
            if target in self.reruns:
                self.upstream.append(target)
            if kind == "lit":
                return (LIT, v)
            self.reads.append(v)
            return (REF, v)
        if tag == CALL:
            func = expr[1]
            if func is _ordering:
                return self._ordering(expr)
            if func is _call_after and expr[2] and expr[2][0][0] == CALL \
                    and expr[2][0][1] is _ordering and len(expr[2]) >= 2:
                self._ordering(expr[2][0])
                inner = expr[2][1]
                if inner[0] == LIT and callable(inner[1]):  # after(): the call itself
                    return self.rename((CALL, inner[1], expr[2][2:], expr[3]))
                return self.rename(inner)  # shell(after=...): the wrapped value
            try:
                self.parts.append("call:" + self.tok.func(func) + "(")
            except Exception as e:  # a callable we cannot even describe
                raise PlanError(f"cannot identify the function {func!r}: {e}") from e
            args = tuple(self.rename(a) for a in expr[2])
            kwargs = []
            for k, v in expr[3]:
                self.parts.append(f",{k}=")
                kwargs.append((k, self.rename(v)))
            self.parts.append(")")
            return (CALL, func, args, tuple(kwargs))
        if tag == BUILD:
            self.parts.append(f"build:{expr[1].__module__}.{expr[1].__qualname__}(")
            items = tuple(self.rename(a) for a in expr[2])
            self.parts.append(")")
            return (BUILD, expr[1], items)
        if tag == DICT:
            self.parts.append("dict(")
            pairs = tuple((self.rename(k), self.rename(v)) for k, v in expr[1])
            self.parts.append(")")
            return (DICT, pairs)
        raise AssertionError(f"unknown expression tag {tag!r}")

    def _ordering(self, expr):
        """``_ordering(*deps)``: edges without data; evaluates to None."""
        self.parts.append("after(")
        for a in expr[2]:
            if a[0] == REF:
                target = self.graph.resolve(a[1])
                kind, v = self.value_of[target]
                self.parts.append("@" + self.token_of[target])
                if target in self.reruns:
                    self.upstream.append(target)
                if kind == "name":
                    self.orders.append(v)
        self.parts.append(")")
        return (LIT, None)


def lift_procid(v):
    """A literal holding ``procid`` as an expression that builds it per proc."""
    if v is procid:
        return (PROC,)
    t = type(v)
    if t is dict:
        return (DICT, tuple((lift_procid(k), lift_procid(x)) for k, x in v.items()))
    if t in (list, tuple, set, frozenset) and contains_procid(v):
        return (BUILD, t, tuple(lift_procid(x) for x in v))
    return (LIT, v)
