"""Dead-letter reason codes (SPEC §9), in the order they are checked."""

MALFORMED_JSON = "malformed_json"
SCHEMA_VIOLATION = "schema_violation"
UNKNOWN_TYPE = "unknown_type"
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
INVALID_TIMESTAMP = "invalid_timestamp"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
DUPLICATE_BUSINESS_ID = "duplicate_business_id"
REFUND_BUYER_MISMATCH = "refund_buyer_mismatch"
REFUND_EXCEEDS_ORDER = "refund_exceeds_order"
FULFILLMENT_BUYER_MISMATCH = "fulfillment_buyer_mismatch"

# Dead letters that keep their event_id: a redelivery of the same content is a
# duplicate, not a new dead letter (SPEC §8).
KEEPS_EVENT_ID = frozenset(
    {DUPLICATE_BUSINESS_ID, REFUND_BUYER_MISMATCH, REFUND_EXCEEDS_ORDER, FULFILLMENT_BUYER_MISMATCH}
)
