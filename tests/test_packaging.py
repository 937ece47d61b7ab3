"""A wheel holds the whole package: every subpackage is listed in pyproject.toml.

setuptools puts into a wheel only the packages ``[tool.setuptools] packages``
lists; an editable install (what the tests run on) finds subpackages anyway,
so a missing one shows only on a real install: ``import dask_condordag``
fails there.
"""

import re
from pathlib import Path

import pytest

import dask_condordag

PACKAGE = Path(dask_condordag.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_every_subpackage_is_listed_for_the_wheel():
    if not PYPROJECT.exists():
        pytest.skip("an installed copy: no pyproject.toml beside the package")
    text = PYPROJECT.read_text(encoding="utf-8")
    m = re.search(r"^\[tool\.setuptools\]\n(?:#.*\n)*packages\s*=\s*\[([^\]]*)\]", text, re.M)
    assert m, "pyproject.toml: no packages = [...] under [tool.setuptools]"
    listed = set(re.findall(r'"([^"]+)"', m.group(1)))
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts)
             for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
