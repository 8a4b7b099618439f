"""The spaces of a journal's state (the first byte of every state key), in
one place so that no two parts of the engine share one."""

META = 0x00  # the journal's head, rules and counters (one row)
SEEN = 0x01  # event_id → (segment version, index) of its first occurrence (SPEC §8)
REFUND_IDS = 0x02  # refund_id claimed
ORDERS = 0x03  # order_id → OrderState
BUYERS = 0x04  # buyer_id → the buyer's recent clicks and unsettled orders
UNSETTLED = 0x05  # (occurred_us, event_id) → order_id, in settlement order
BY_LEVEL1 = 0x06  # (promoter, order_id): unsettled orders a promoter wins at level 1
PARKED_REFUNDS = 0x07  # order_id → refunds waiting for it
COLD_CLICKS = 0x09  # (buyer_id, sort key of the row's latest click) → older clicks of the buyer
PARKED_CLICKS = 0x0A  # share_id → clicks waiting for it
PARKED_FULFILLMENTS = 0x0B  # order_id → fulfillments waiting for it (SPEC §15)
RECEIPT_DUE = 0x0C  # (due_us, event_id) → order_id: receipt-clock orders with a due instant, in settlement order
AWAITING_RECEIPT = 0x0D  # (occurred_us, event_id) → order_id: receipt-clock orders not received (nor fully refunded)
SHARES = 0x10  # share_id → ShareRef
UPLINE = 0x11  # promoter_id → Upline
CHILDREN = 0x12  # share_id → shares re-shared from it
PARENTED = 0x13  # (occurred_us, event_id) → share_id of every share with a parent
BIND_ORDER = 0x14  # (occurred_us, event_id) of each upline binding → promoter_id
ORDER_HOLDS = 0x20  # order_id → its holds, review, approval, rejection (SPEC §16)
HELD = 0x21  # (occurred_us, event_id) → order_id of every unsettled order with a hold in force (out of UNSETTLED)
PROMOTER_HOLDS = 0x22  # promoter_id → its holds in force (the treasury journal)
