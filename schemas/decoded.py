"""What ``decode_event`` returns, as msgspec Structs.

They live apart from ``schemas.decode`` because that module is compiled with
mypyc (``scripts/compile.py``), and a compiled module that subclasses
``msgspec.Struct`` loses the class keywords (``frozen``, ``gc``…)."""

from __future__ import annotations

from typing import Union

import msgspec

from schemas.events import Event


class Decoded(msgspec.Struct, gc=False):
    """A valid event, its instant and the bytes it was decoded from; the
    content fingerprint on demand (computed once, then kept)."""

    event: Event
    occurred_us: int
    raw: bytes
    _fingerprint: Union[bytes, None] = None

    def fingerprint(self) -> bytes:
        """``fingerprint(self.raw)``: the SPEC §8 content digest of this event."""
        digest = self._fingerprint
        if digest is None:
            from schemas.decode import fingerprint  # decode imports this module

            digest = self._fingerprint = fingerprint(self.raw)
        return digest


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """An event that fails SPEC §1; ``event_id`` is set when it could be read."""

    reason: str
    detail: str
