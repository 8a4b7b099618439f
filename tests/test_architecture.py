"""The layers contract of pyproject.toml ([tool.importlinter]): imports run one way,
cli → devkit → service | consumers → projections → ledger → schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACT = CONFIG["contracts"][0]["name"]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo", "pyproject.toml"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_layers_contract_is_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{CONTRACT} KEPT" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """A copy of the packages where the lowest-but-one layer imports the top one."""
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "ledger" / "__init__.py", "a") as init:
        init.write("\nimport cli  # deliberately upward\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert f"{CONTRACT} BROKEN" in done.stdout
    assert "ledger is not allowed to import cli" in done.stdout
    assert "- ledger -> cli (l." in done.stdout
