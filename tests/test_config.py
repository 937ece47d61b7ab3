"""Option defaults live once, in ``condordag.yaml``, merged into dask's
config on first use (``dask.config.update_defaults``); code reads them with
``dask.config.get``; each option is checked in one place."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import MISSING, fields
from operator import add
from pathlib import Path

import dask
import pytest
import yaml

import dask_condordag
from dask_condordag import plan
from dask_condordag.config import Options, option, options
from dask_condordag.exceptions import CondorDagError, PlanError
from dask_condordag.graph import read_graph

YAML = Path(dask_condordag.__file__).parent / "condordag.yaml"


def test_every_option_has_its_default_in_the_yaml_only():
    shipped = yaml.safe_load(YAML.read_text())["condordag"]
    opts = {f.name for f in fields(Options)} - {"path", "name"}
    assert {k.replace("-", "_") for k in shipped} == opts
    with_default = {f.name for f in fields(Options) if f.default is not MISSING}
    assert with_default == {"path", "name"}  # no second copy of a default in the dataclass
    assert not [n for n in vars(plan) if n.startswith("DEFAULT_")]
    sig = inspect.signature(plan.make_plan).parameters
    assert [sig[p].default for p in ("inline_limit", "group", "arg_limit")] == [None] * 3
    # merged once into dask's defaults on first use (the conftest overrides some)
    option("run")
    assert [d for d in dask.config.defaults if "condordag" in d] == [{"condordag": shipped}]


def test_dask_config_wins_over_the_shipped_defaults_and_survives_refresh(monkeypatch):
    assert option("inline_limit") == 65536
    with dask.config.set({"condordag.inline-limit": 10}):
        assert option("inline_limit") == 10 and options({}).inline_limit == 10
        assert options({"inline_limit": 5}).inline_limit == 5
    monkeypatch.setenv("DASK_CONDORDAG__MAX_WORKERS", "3")
    dask.config.refresh()
    try:
        assert options({}).max_workers == 3
        assert option("run") == "auto"  # the shipped defaults are kept by refresh()
    finally:
        monkeypatch.delenv("DASK_CONDORDAG__MAX_WORKERS")
        dask.config.refresh()
    assert options({}).max_workers is None


def test_make_plan_reads_the_configured_limits():
    g = read_graph({"a": (add, [0] * 2000, [])}, ["a"])
    plan.make_plan(g, name="t")
    with dask.config.set({"condordag.arg-limit": 1000}):
        with pytest.raises(PlanError, match="option arg_limit"):
            plan.make_plan(g, name="t")
    with dask.config.set({"condordag.group": "sideways"}):
        with pytest.raises(PlanError, match="group='sideways'"):
            plan.make_plan(g, name="t")


@pytest.mark.parametrize("kw, message", [
    ({"run": "later"}, "run='later' is not one of"),
    ({"max_workers": 0}, "max_workers=0: give a whole number >= 1, or None"),
    ({"inline_limit": -1}, "inline_limit=-1: give a number of bytes >= 0"),
    ({"arg_limit": "10MB"}, "arg_limit='10MB': give a number of bytes >= 0"),
    ({"group": "trees"}, "group='trees' is not one of"),
    ({"hold_timeout": True}, "hold_timeout=True: give a number of seconds"),
    ({"poll_interval": -1}, "poll_interval=-1: give a number of seconds"),
    ({"dagman_scan_interval": 0}, "dagman_scan_interval=0: give a whole number of seconds"),
])
def test_each_option_is_checked_with_a_message_naming_it(kw, message):
    with pytest.raises(CondorDagError, match=message.replace("(", r"\(")):
        options(kw)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match=r"unknown dask-condordag option\(s\) \['colour'\]"):
        options({"colour": "red"})


def test_the_defaults_are_read_on_first_use_and_survive_a_config_block():
    code = ("import dask, dask_condordag.config as c\n"
            "assert c.defaults.cache_info().currsize == 0\n"
            "with dask.config.set({'condordag.inline-limit': 10}):\n"
            "    assert c.option('inline_limit') == 10\n"
            "assert c.option('inline_limit') == 65536, c.option('inline_limit')\n"
            "assert c.option('run') == 'auto'\n"
            "dask.config.refresh()  # the merged defaults come back with dask's own\n"
            "assert dask.config.get('condordag.run') == 'auto'\n"
            "assert dask.config.get('condordag.max-workers', 'gone') is None\n")
    subprocess.run([sys.executable, "-c", code], check=True)
