"""The worker shim keeps its own copy of the on-disk constants: they must agree."""

import ast
from pathlib import Path

from dask_condordag import names, worker


def test_shim_constants_agree_with_names():
    assert worker.PAYLOAD_MAGIC == names.PAYLOAD_MAGIC
    assert worker.RESULT_OK == names.RESULT_OK
    assert worker.RESULT_ERR == names.RESULT_ERR
    assert worker.PACK_MAGIC == names.PACK_MAGIC


def test_shim_expression_tags_agree_with_names():
    tags = ("LIT", "REF", "CALL", "BUILD", "DICT", "PROC")
    assert [getattr(worker, t) for t in tags] == [getattr(names, t) for t in tags]
    assert len({getattr(names, t) for t in tags}) == len(tags)


def test_shim_imports_only_the_standard_library_at_top():
    tree = ast.parse(Path(worker.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module.split(".")[0])
    import sys

    assert top <= set(sys.stdlib_module_names), top - set(sys.stdlib_module_names)


def test_safe_prefix_and_workflow_names():
    assert names.safe_prefix("a b+c.d,e") == "a_b_c_d_e"
    assert names.safe_prefix("___") == "task"
    assert len(names.safe_prefix("x" * 500)) == 40
    assert names.valid_workflow_name("run-1_a")
    for bad in ("", "a b", "a.b", "-x", "a/b", 3):
        assert not names.valid_workflow_name(bad)


def test_boot_script_agrees_with_names_and_is_standalone():
    import os
    import sys

    from dask_condordag import boot

    assert os.path.basename(boot.ZIP) == os.path.basename(names.PACKAGES_ZIP)
    assert os.path.basename(boot.WORKER) == os.path.basename(names.WORKER)
    bin_dirs = {os.path.dirname(n) for n in (names.PACKAGES_ZIP, names.WORKER, names.BOOT)}
    assert bin_dirs == {names.BIN_DIR}  # the boot script finds both next to itself
    tree = ast.parse(Path(boot.__file__).read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
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
