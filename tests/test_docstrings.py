"""The examples in docstrings run, and the example domains run as scripts."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = [
    "cronica",
    "cronica.aggregates",
    "cronica.audit",
    "cronica.event_types",
    "cronica.projections.as_of",
    "cronica.projections.runner",
    "cronica.readmodels",
    "cronica.readmodels.base",
    "cronica.readmodels.sqlite",
    "cronica.repository",
    "cronica.subscriptions",
    "cronica.testing",
    "cronica.upcasting",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no docstring example"
    assert failed == 0


@pytest.mark.parametrize("example", ["bank", "orders", "customers"])
def test_example_domains_run_as_scripts_on_sqlite(example: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'examples.db'}"
    for _ in range(2):  # a second run on the same file works too
        done = subprocess.run(
            [sys.executable, "-m", f"cronica.examples.{example}", "--store", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()
