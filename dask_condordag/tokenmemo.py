"""Tokens that stay the same whichever object of a cycle is met first.

Data
    A memo from a key (``id`` of a function or class; ``("code", ...)``,
    ``("global", ...)`` tuples) to ``(kept object, token, reasons)``: the
    object is kept so that its ``id`` stays unique for the memo's life, the
    token is 32 hex digits of SHA-256 of the object's text, and ``reasons``
    say why the object cannot be hashed deterministically (then the token
    mixes in the compile's ``nonce``, so it matches no earlier compile's).
    ``_memo(key, keep, compute)`` is the one way in: ``compute()`` gives the
    object's text, calling ``_memo`` again for what the object refers to.

Policy
    * Reasons met while computing an object's text pass to every object
      whose text includes it (each ``_Frame`` collects its own), and to the
      caller's first frame, which :meth:`CycleMemo.take_reasons` empties.
    * Objects that refer to each other -- functions that call each other, a
      class and the methods that name it -- are found as Tarjan's algorithm
      finds strongly connected components (R. Tarjan, "Depth-first search
      and linear graph algorithms", SIAM J. Comput. 1972): each object gets
      an index when first met; ``low`` is the smallest index of an
      unfinished object reached from it. A member of a cycle stays *open*
      (not cached) until the cycle's root is done; then ``_close_cycle``
      gives every member a token made of the whole cycle's texts (each
      member by label), so the tokens do not depend on which member a
      compile met first.
    * What the texts are made of (functions, classes, code, globals) is the
      ``tokens.Tokenizer``'s business (it subclasses this); this module only
      memoizes, collects reasons and closes cycles.

Example::

    >>> class Words(CycleMemo):
    ...     def word(self, w):
    ...         return self._memo(("word", w), w, lambda: f"word:{w}")
    >>> m = Words(nonce="")
    >>> m.word("a") == Words(nonce="").word("a") == sha("word:a")[:32]
    True
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["CycleMemo", "sha", "qualname"]


def sha(text: str) -> str:
    """Hex SHA-256 of a string."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Frame:
    """One object being tokenized: why it cannot be compared (``reasons``),
    and the smallest index of an unfinished object it reached (``low``)."""

    __slots__ = ("reasons", "low", "members")

    def __init__(self, index: int):
        self.reasons: list = []
        self.low = index
        self.members: list = []  # (key, object, compute) of unfinished cycle members



class CycleMemo:
    """The memo of one compile's tokens (see the module docstring).

    ``nonce``: mixed into every token whose object cannot be hashed; random
    by default (such a token matches nothing from another compile), ``""``
    for tokens that are the same in every process.
    """

    def __init__(self, nonce: str | None = None):
        self._nonce = secrets.token_hex(16) if nonce is None else nonce
        self._cache: dict = {}  # key -> (kept object, token, reasons)
        self._active: dict = {}  # key -> index, for the objects being tokenized now
        self._open: dict = {}  # key -> index, for finished members of unfinished cycles
        self._counter = 0  # the last index given (see _memo)
        self._frames: list = [_Frame(0)]  # [0]: for the caller, see take_reasons
        self._scc = None  # key -> label while _close_cycle recomputes a cycle

    def take_reasons(self) -> tuple:
        """Why what was tokenized since the last call always reruns (empty:
        nothing that cannot be hashed was met), and start afresh."""
        frame = self._frames[0]
        if not frame.reasons:
            return ()
        out = tuple(dict.fromkeys(frame.reasons))
        frame.reasons = []
        return out

    def _memo(self, key, keep, compute) -> str:
        """The token of ``keep`` (cached under ``key``), ``compute()`` giving
        its text. Reasons found on the way pass to the caller's frame.

        Cycles are found as Tarjan's algorithm finds strongly connected
        components: each object gets an index when it is first met; ``low`` is
        the smallest index of an unfinished object reached from it. An object
        whose ``low`` is below its own index is part of a cycle through an
        object still being tokenized: it stays *open* (not cached, its text
        unused) until that cycle's first object (its root) is done; then
        ``_close_cycle`` gives every member its token."""
        got = self._cache.get(key)
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        if self._scc is not None and key in self._scc:  # see _close_cycle
            return "scc:" + self._scc[key]
        index = self._active.get(key)
        if index is None:
            index = self._open.get(key)
        if index is not None:  # a cycle: named here, _close_cycle covers it
            frame = self._frames[-1]
            if index < frame.low:
                frame.low = index
            return "cycle:" + _label(key, keep)
        self._counter += 1
        index = self._counter
        frame = _Frame(index)
        self._active[key] = index
        self._frames.append(frame)
        try:
            text = compute()
        finally:
            self._frames.pop()
            del self._active[key]
        reasons = tuple(dict.fromkeys(frame.reasons)) if frame.reasons else ()
        caller = self._frames[-1]
        if reasons:
            caller.reasons.extend(reasons)
        if frame.low < index:  # open: part of a cycle through an unfinished caller
            self._open[key] = index
            caller.members.append((key, keep, compute))
            caller.members.extend(frame.members)
            if frame.low < caller.low:
                caller.low = frame.low
            return "open:" + _label(key, keep)
        if frame.members:  # the root of a cycle
            return self._close_cycle([(key, keep, compute), *frame.members], reasons)
        token = self._token(text, reasons)
        self._cache[key] = (keep, token, reasons)
        return token

    def _token(self, text: str, reasons: tuple) -> str:
        token = sha(text)[:32]
        if reasons and self._nonce:
            token = sha(token + self._nonce)[:32]
        return token

    def _close_cycle(self, members: list, reasons: tuple) -> str:
        """Tokens for the objects of one cycle (a strongly connected component:
        functions that call each other, a class and the methods that name it),
        the same whichever of them was met first: each one's text with the
        others (and itself) by label, sorted, make the cycle's token; each
        member's token is that and its own text. Returns the first member's."""
        members = list({key: (key, keep, compute) for key, keep, compute in members}.values())
        labels = {key: _label(key, keep) for key, keep, _ in members}
        for key in labels:
            self._open.pop(key, None)
        self._scc = labels
        try:
            texts = []
            for key, keep, compute in members:
                self._frames.append(_Frame(0))  # (the reasons are known already)
                try:
                    texts.append(compute())
                finally:
                    self._frames.pop()
        finally:
            self._scc = None
        whole = sha("|".join(sorted(texts)))
        out = None
        for (key, keep, _), text in zip(members, texts):
            token = self._token(f"cycle({whole};{labels[key]};{text})", reasons)
            self._cache[key] = (keep, token, reasons)
            out = out or token
        return out


def _label(key, keep) -> str:
    """How a member of a cycle is named inside the others' texts."""
    if type(key) is int:
        return qualname(keep)
    if key[0] == "code":
        return "code:" + keep[0].co_name
    return f"{key[0]}:{key[-1]}"


def qualname(f) -> str:
    """``module.qualname`` of a function or class: how tokens name installed
    code, and cycle members inside each other's texts."""
    mod = getattr(f, "__module__", None) or ""
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)
    return f"{mod}.{name}"
