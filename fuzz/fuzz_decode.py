"""Coverage-guided fuzzing of ``decode_event`` with atheris (libFuzzer).

    python fuzz/fuzz_decode.py -max_total_time=600                      # by hand, as long as you like
    python fuzz/fuzz_decode.py CORPUS fuzz/seeds -dict=fuzz/json.dict   # with seeds and the JSON dictionary

Every input must come back as ``Decoded`` or ``Rejected`` with a reason code of
``schemas.reasons``, without reaching decode_event's last-resort guard, and
``malformed_json`` exactly when an independent oracle says the bytes are not one
I-JSON value, and with exactly the outcome of the careful path (the typed fast
path of issue 13 decides nothing else; fuzz/properties.py). A failure is a crash: libFuzzer writes the
input to ``crash-…``; each one becomes a named regression test in
tests/test_hostile_input.py. tests/test_atheris.py runs this for 30 s.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["schemas", "properties"]):
    from properties import check_decode


def test_one_input(data: bytes) -> None:
    check_decode(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
