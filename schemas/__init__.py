"""Wire events: msgspec Structs, strict decoding, dead-letter reason codes."""

from schemas.decode import Decoded, Rejected, decode_event
from schemas.events import Click, Event, Fulfillment, Line, Order, Refund, Share
from schemas.timestamps import format_timestamp_us, parse_timestamp_us

__all__ = [
    "Click",
    "Decoded",
    "Event",
    "Fulfillment",
    "Line",
    "Order",
    "Refund",
    "Rejected",
    "Share",
    "decode_event",
    "format_timestamp_us",
    "parse_timestamp_us",
]
