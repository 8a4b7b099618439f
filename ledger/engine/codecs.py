"""How state values are stored: MessagePack through msgspec, each value's type
being its schema; keys are UTF-8 ids or the sortable keys of ledger.statestore."""

from __future__ import annotations

from typing import Any, Callable

import msgspec

_encoder = msgspec.msgpack.Encoder()
encode: Callable[[Any], bytes] = _encoder.encode


def decoder(kind: Any) -> Callable[[bytes], Any]:
    return msgspec.msgpack.Decoder(kind).decode


# An id as a key: its UTF-8 bytes (ids never hold lone surrogates: the decoder
# rejects them as malformed_json), by the C method itself, not a Python call.
id_key = str.encode


same = bytes  # a value stored as it is (the cache writes it without a call)


def marker(_: object) -> bytes:
    return b""


def present(_: bytes) -> bool:
    return True
