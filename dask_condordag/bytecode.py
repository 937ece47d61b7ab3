"""The globals a code object reads, from its bytecode.

Data
    In: a code object. Out: the global names it loads (``LOAD_GLOBAL``,
    ``LOAD_NAME``, ``LOAD_FROM_DICT_OR_GLOBALS``), each with the attributes
    loaded from it in a row (``mod.sub.NAME`` -> ``("mod", "sub", "NAME")``),
    in order; nested code objects are the caller's to walk.

Policy
    * The bytecode is read directly (``dis.get_instructions`` costs ~300 us a
      function), for the opcode layouts of CPython 3.10 to 3.14 (see
      ``Python/bytecodes.c`` and ``Lib/dis.py`` of each): ``CACHE`` entries
      skipped, ``EXTENDED_ARG`` folded in, the low bit of ``LOAD_GLOBAL``
      (3.11+) and ``LOAD_ATTR`` (3.12+) arguments dropped.
    * A newer Python uses ``dis`` (``_global_reads_dis``); a layout this
      reader does not know counts every name the code holds (when in doubt,
      more is read, and a change reruns the task).
      ``tests/test_tokens_globals.py`` checks the reader against ``dis``.

Example::

    >>> import os
    >>> def f(p):
    ...     return os.path.join(p, NAME)
    >>> global_reads(f.__code__)
    [('os', 'path', 'join'), ('NAME',)]
"""

from __future__ import annotations

import dis
import sys
import types

__all__ = ["global_reads"]

_OP = dis.opmap
_LOAD_GLOBAL = _OP["LOAD_GLOBAL"]
_GLOBAL_OPS = {_OP[n]: 0 for n in ("LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS") if n in _OP}
_GLOBAL_OPS[_LOAD_GLOBAL] = 1 if sys.version_info >= (3, 11) else 0  # low bit: push NULL
_ATTR_OPS = {_OP["LOAD_ATTR"]: 1 if sys.version_info >= (3, 12) else 0}  # low bit: method
if "LOAD_METHOD" in _OP and _OP["LOAD_METHOD"] < 256:  # 3.11 and older (pseudo-op later)
    _ATTR_OPS[_OP["LOAD_METHOD"]] = 0
_EXTENDED_ARG = _OP["EXTENDED_ARG"]
_CACHE = _OP.get("CACHE", -1)
_KNOWN_LAYOUT = sys.version_info < (3, 15)  # the arguments above are checked up to 3.14


def global_reads(code: types.CodeType) -> list:
    """The globals ``code`` itself loads (not its nested code), each as a
    tuple: the name, then the attributes loaded from it in a row
    (``mod.sub.NAME`` -> ``("mod", "sub", "NAME")``), in order.

    Reads the bytecode directly (``dis.get_instructions`` costs ~300 us per
    function); ``tests/test_tokens_globals.py`` checks it against ``dis``.
    """
    if not _KNOWN_LAYOUT:
        return _global_reads_dis(code)
    names = code.co_names
    raw = code.co_code
    out = []
    chain = None
    ext = 0
    try:
        for i in range(0, len(raw), 2):
            op = raw[i]
            if op == _CACHE:
                continue
            arg = raw[i + 1] | ext
            if op == _EXTENDED_ARG:
                ext = arg << 8
                continue
            ext = 0
            shift = _GLOBAL_OPS.get(op)
            if shift is not None:
                chain = [names[arg >> shift]]
                out.append(chain)
                continue
            shift = _ATTR_OPS.get(op)
            if shift is not None and chain is not None:
                chain.append(names[arg >> shift])
                continue
            chain = None
    except IndexError:  # a layout this reader does not know: every name counts
        return [(n,) for n in names]
    return [tuple(c) for c in out]


def _global_reads_dis(code: types.CodeType) -> list:
    out = []
    chain = None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"):
            chain = [ins.argval]
            out.append(chain)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and chain is not None:
            chain.append(ins.argval)
        else:
            chain = None
    return [tuple(c) for c in out]
