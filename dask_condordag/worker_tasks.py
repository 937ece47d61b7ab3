"""The worker shim's tasks: the expression language, and the order a node's
tasks run in, one after the other or on several threads.

Shipped with the worker shim (``worker.py``) as
``bin/dask_condordag_worker_tasks.py`` (``names.WORKER_FILES``); standard
library only (``threading``/``queue`` only when a node runs tasks in parallel).

Data
    An expression (graph.py lowers each dask task into one):
    ``(LIT, value)`` literal; ``(REF, name)`` the value named (an input or a
    task of the node); ``(CALL, func, args, kwargs)`` a call;
    ``(BUILD, constructor, items)``; ``(DICT, pairs)``; ``(PROC,)`` this job's
    process number in its ``queue N`` cluster. A node's tasks are a list of
    ``(task name, expression)`` in dependency order, most urgent first.

Policy (as dask's ``get_async`` in ``dask/local.py``: a ready set, a submit
function, a loop that collects what finished)
    * A task starts once the tasks of its node that it reads
      (:func:`expr_reads`) are done; among the ready tasks, the first in the
      list starts first. With ``threads=1`` (the default) that is exactly the
      list order, in the main thread.
    * With ``threads=n`` (the payload's ``"threads"``, set by the planner
      together with ``request_cpus = n``) up to ``n`` tasks run at once, on
      ``n`` threads, as dask's default threaded scheduler runs delayed and
      array graphs. Threads share the GIL: tasks that spend their time in
      numpy, pandas, compression, I/O or other code that releases it run in
      parallel; pure-Python CPU-bound tasks do not get faster.
    * After the first failure nothing more starts; the tasks already running
      finish (a thread cannot be stopped) and keep their results.

Example::

    >>> tasks = [("a", (LIT, 1)), ("b", (CALL, abs, ((REF, "a"),), ()))]
    >>> env = {}
    >>> def execute(task, expr):  # None: it succeeded
    ...     env[task] = evaluate(expr, env)
    >>> run_tasks(tasks, execute, threads=2)
    (['a', 'b'], None)
    >>> env["b"]
    1
"""

import heapq

_DCD_SHIM = True  # marks the shim's frames, left out of a task's traceback

LIT, REF, CALL, BUILD, DICT, PROC = 0, 1, 2, 3, 4, 5  # the expression tags
PROC_KEY = ("dask_condordag", "procid")


def evaluate(expr, env):
    tag = expr[0]
    if tag == LIT:
        return expr[1]
    if tag == REF:
        return env[expr[1]]
    if tag == CALL:
        args = [evaluate(a, env) for a in expr[2]]
        if expr[3]:
            return expr[1](*args, **{k: evaluate(v, env) for k, v in expr[3]})
        return expr[1](*args)
    if tag == BUILD:
        return expr[1]([evaluate(a, env) for a in expr[2]])
    if tag == DICT:
        return {evaluate(k, env): evaluate(v, env) for k, v in expr[1]}
    if tag == PROC:
        return env[PROC_KEY]
    raise ValueError("unknown expression tag %r" % (tag,))


def expr_reads(expr, out):
    """Add the value names ``expr`` references (tag REF) to the set ``out``."""
    tag = expr[0]
    if tag == REF:
        out.add(expr[1])
    elif tag == CALL:
        for a in expr[2]:
            expr_reads(a, out)
        for _, v in expr[3]:
            expr_reads(v, out)
    elif tag == BUILD:
        for a in expr[2]:
            expr_reads(a, out)
    elif tag == DICT:
        for k, v in expr[1]:
            expr_reads(k, out)
            expr_reads(v, out)
    return out


def threads_of(meta):
    """How many threads the payload asks for: its ``"threads"``, a whole
    number >= 1; 1 when absent."""
    n = meta.get("threads", 1)
    if type(n) is not int or n < 1:
        raise ValueError("the payload of node %s asks for threads=%r: expected a whole "
                         "number >= 1 (written by another version?)" % (meta.get("node"), n))
    return n


def task_deps(tasks):
    """task -> the tasks of the same node that it reads."""
    mine = {t for t, _ in tasks}
    return {t: expr_reads(expr, set()) & mine for t, expr in tasks}


class _Inline:
    """Runs each task as it is submitted, in the calling thread."""

    def __init__(self, execute):
        self.execute, self.results = execute, []

    def submit(self, task, expr):
        self.results.append((task, self.execute(task, expr)))

    def collect(self):
        return self.results.pop(0)

    def close(self):
        pass


class _Threads:
    """``n`` threads that take tasks from one queue and put what happened on another."""

    def __init__(self, execute, n):
        import queue  # only for a node that runs tasks in parallel
        import threading  # likewise

        self.todo, self.done = queue.SimpleQueue(), queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._loop, args=(execute,), daemon=True,
                                         name="dask-condordag-task-%d" % i) for i in range(n)]
        for t in self.threads:
            t.start()

    def _loop(self, execute):
        while True:
            item = self.todo.get()
            if item is None:
                return
            try:
                err = execute(*item)
            except BaseException as e:  # noqa: B902 - execute reports its own; never lose one
                err = (e, "running")
            self.done.put((item[0], err))

    def submit(self, task, expr):
        self.todo.put((task, expr))

    def collect(self):
        return self.done.get()

    def close(self):
        for _ in self.threads:
            self.todo.put(None)


def run_tasks(tasks, execute, threads=1, on_failure=None):
    """Run ``execute(task, expr)`` for each of ``tasks`` (``[(task, expr)]``),
    up to ``threads`` at once, each once the tasks it reads are done, the
    first ready in list order first. ``execute`` returns None when the task
    succeeded, else ``(exception, stage)``.

    Returns ``(done, failure)``: the tasks that succeeded, in the order they
    finished, and ``(task, exception, stage)`` of the first failure (None if
    none). After a failure nothing more starts; a later failure of a task
    that was already running goes to ``on_failure(task, exception, stage)``.
    """
    order = {t: i for i, (t, _) in enumerate(tasks)}
    deps = task_deps(tasks)
    waiting = {t: len(d) for t, d in deps.items()}
    dependents = {t: [] for t in order}
    for t, d in deps.items():
        for p in d:
            dependents[p].append(t)
    ready = [order[t] for t, n in waiting.items() if not n]
    heapq.heapify(ready)
    pool = _Inline(execute) if threads == 1 else _Threads(execute, min(threads, len(tasks)))
    done, running, failure = [], 0, None
    try:
        while True:
            while failure is None and ready and running < threads:
                pool.submit(*tasks[heapq.heappop(ready)])
                running += 1
            if not running:
                break
            task, err = pool.collect()
            running -= 1
            if err is None:
                done.append(task)
                for t in dependents[task]:
                    waiting[t] -= 1
                    if not waiting[t]:
                        heapq.heappush(ready, order[t])
            elif failure is None:
                failure = (task,) + tuple(err)
            elif on_failure is not None:
                on_failure(task, *err)
    finally:
        pool.close()
    if failure is None and len(done) < len(tasks):
        stuck = sorted((t for t in order if t not in set(done)), key=order.get)
        raise RuntimeError("tasks %s of this node read each other in a cycle; none of them "
                           "can start" % ", ".join(stuck[:5]))
    return done, failure
