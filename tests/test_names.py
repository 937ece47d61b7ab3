"""The worker shim keeps its own copy of the on-disk constants: they must agree."""

import ast
import os
import sys
from pathlib import Path

import dask_condordag
from dask_condordag import names, worker_files, worker_tasks

PACKAGE = Path(dask_condordag.__file__).parent


def test_shim_constants_agree_with_names():
    assert worker_files.PAYLOAD_MAGIC == names.PAYLOAD_MAGIC
    assert worker_files.RESULT_OK == names.RESULT_OK
    assert worker_files.RESULT_ERR == names.RESULT_ERR
    assert worker_files.PACK_MAGIC == names.PACK_MAGIC


def test_shim_expression_tags_agree_with_names():
    tags = ("LIT", "REF", "CALL", "BUILD", "DICT", "PROC")
    assert [getattr(worker_tasks, t) for t in tags] == [getattr(names, t) for t in tags]
    assert len({getattr(names, t) for t in tags}) == len(tags)


def _top_imports(path: Path) -> tuple:
    """(absolute modules, relative modules) imported at the top of ``path``,
    also inside a top-level ``if``/``else`` (the shim's two ways to import
    its siblings)."""
    absolute, relative = set(), set()
    todo = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Import):
            absolute.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            (relative if node.level else absolute).add(node.module)
    return absolute, relative


def test_shim_files_are_shipped_beside_the_entry_script():
    assert next(iter(names.WORKER_FILES.items())) == ("worker.py", names.WORKER)
    for module, shipped in names.WORKER_FILES.items():
        assert (PACKAGE / module).is_file(), module
        assert os.path.dirname(shipped) == names.BIN_DIR
        assert os.path.basename(shipped) == f"dask_condordag_{module}"
    assert names.WORKER_TRANSFER.split(",") == list(names.WORKER_FILES.values())


def test_shim_imports_only_the_standard_library_and_its_siblings():
    siblings = {m[:-3] for m in names.WORKER_FILES}
    shipped = {os.path.basename(p)[:-3] for p in names.WORKER_FILES.values()}
    for module in names.WORKER_FILES:
        absolute, relative = _top_imports(PACKAGE / module)
        assert relative <= siblings, (module, relative - siblings)
        others = {m for m in absolute if m.split(".")[0] not in sys.stdlib_module_names}
        assert others <= shipped, (module, others - shipped)
        # both ways or neither: the package's copy and the shipped one import the same
        assert {f"dask_condordag_{m}" for m in relative} == others, module


def test_safe_prefix_and_workflow_names():
    assert names.safe_prefix("a b+c.d,e") == "a_b_c_d_e"
    assert names.safe_prefix("___") == "task"
    assert len(names.safe_prefix("x" * 500)) == 40
    assert names.valid_workflow_name("run-1_a")
    for bad in ("", "a b", "a.b", "-x", "a/b", 3):
        assert not names.valid_workflow_name(bad)


def test_boot_script_agrees_with_names_and_is_standalone():
    from dask_condordag import boot

    assert os.path.basename(boot.ZIP) == os.path.basename(names.PACKAGES_ZIP)
    assert os.path.basename(boot.WORKER) == os.path.basename(names.WORKER)
    bin_dirs = {os.path.dirname(n) for n in (names.PACKAGES_ZIP, names.WORKER, names.BOOT)}
    assert bin_dirs == {names.BIN_DIR}  # the boot script finds both next to itself
    absolute, relative = _top_imports(Path(boot.__file__))
    assert not relative
    top = {m.split(".")[0] for m in absolute}
    assert top <= set(sys.stdlib_module_names), top - set(sys.stdlib_module_names)


def test_doctor_probe_agrees_with_names_and_is_standalone():
    import sys

    from dask_condordag import doctor_probe

    text = Path(doctor_probe.__file__).read_text()
    assert f'"{names.BOOT}"' in text and f'"{names.WORKER}"' in text
    assert '"dcd_boot"' in text  # runs the boot script without starting the worker
    tree = ast.parse(text)
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= set(sys.stdlib_module_names), top - set(sys.stdlib_module_names)
