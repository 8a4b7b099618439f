"""The interpreted source of a module that may be compiled (scripts/compile.py).

A compiled module binds its own globals at build time: patching
``schemas.decode.parse_timestamp_us`` does not change what the compiled
``decode_event`` calls. A test that needs to patch a module's internals
patches a fresh interpreted copy of it instead: the same source, loaded from
its ``.py`` under a private name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def interpreted_copy(name: str) -> ModuleType:
    """A new module object executed from ``name``'s ``.py`` source (its imports
    are the real, possibly compiled, modules)."""
    path = ROOT / (name.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(f"_interpreted_{name.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look a module up by name
    spec.loader.exec_module(module)
    return module
