"""Compile the hot path with mypyc, in place: ``python scripts/compile.py``.

``COMPILED`` below is the one list of compiled modules. Each is built from its
own Python source into a C extension placed beside the ``.py`` (Python loads
the extension first); deleting the ``.so`` files (``--clean``) gives back the
interpreted build, which must produce the same bytes (tests/test_compiled.py).
What code in these modules must avoid: docs/performance.md, "The compiled hot path".

A manifest of the sources' SHA-256 (``MANIFEST``) is written after a build, so
that a stale extension (built from an older source) is found before it runs
(tests/conftest.py refuses to test one).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "build" / "compiled-sources.json"

# The decoder and the engine. Not here: modules defining msgspec.Struct
# subclasses (schemas/events.py, schemas/decoded.py, ledger/engine/state.py,
# ledger/records.py), which would lose their class keywords.
COMPILED = [
    "schemas/ijson.py",
    "schemas/timestamps.py",
    "schemas/peek.py",
    "schemas/decode.py",
    "ledger/attribution.py",
    "ledger/commission.py",
    "ledger/engine/spaces.py",
    "ledger/engine/tables.py",
    "ledger/engine/groups.py",
    "ledger/engine/fulfillment.py",
    "ledger/engine/holds.py",
    "ledger/engine/codecs.py",
    "ledger/engine/dedupe.py",
    "ledger/engine/clicks.py",
    "ledger/engine/orders.py",
    "ledger/engine/network.py",
    "ledger/engine/decision.py",
    "ledger/engine/posting.py",
    "ledger/engine/commands.py",
    "ledger/engine/core.py",
]


GROUP = "schemas._compiled"


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def source_digests() -> dict[str, str]:
    return {path: hashlib.sha256((ROOT / path).read_bytes()).hexdigest() for path in COMPILED}


def extensions() -> list[Path]:
    """The built extensions of this tree (the modules' and mypyc's shared library)."""
    found = [p for path in COMPILED for p in (ROOT / path).parent.glob(Path(path).stem + ".*.so")]
    return found + list(ROOT.glob("*__mypyc.*.so")) + list((ROOT / "schemas").glob("_compiled__mypyc.*.so"))


def clean() -> None:
    for path in extensions():
        path.unlink()
    MANIFEST.unlink(missing_ok=True)


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)
    started = time.monotonic()
    clean()
    ext_modules = mypycify(
        ["--ignore-missing-imports", "--follow-imports=silent", *COMPILED],
        opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"),
        # One group (calls between its modules are C calls), its shared library
        # in the lowest package, which every compiled module may import.
        group_name=GROUP,
        verbose=False,
    )
    setup(name="commission-ledger-compiled", ext_modules=ext_modules,
          script_args=["build_ext", "--inplace", "--parallel", str(os.cpu_count() or 1)])
    MANIFEST.parent.mkdir(exist_ok=True)
    MANIFEST.write_text(json.dumps(source_digests(), indent=1, sort_keys=True) + "\n")
    print(f"compiled {len(COMPILED)} modules with mypyc in {time.monotonic() - started:.0f} s", file=sys.stderr)


def stale() -> list[str]:
    """Compiled modules whose extension was built from another source than the
    one beside it (empty when nothing is compiled)."""
    if not extensions():
        return []
    built = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    now = source_digests()
    return [path for path in COMPILED if built.get(path) != now[path]]


if __name__ == "__main__":
    if sys.argv[1:] == ["--clean"]:
        clean()
    elif sys.argv[1:] == ["--stale"]:
        print("\n".join(stale()))
    else:
        build()
