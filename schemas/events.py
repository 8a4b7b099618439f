"""Wire events (SPEC §1) as msgspec Structs: the Struct is the schema.

Optional fields given as ``null`` mean "absent": they decode to ``None`` and the
accessors below apply the SPEC default. Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec

MAX_SAFE_INT = 2**53 - 1
MAX_RATE_BP = 10_000

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
RateBp = Annotated[int, msgspec.Meta(ge=0, le=MAX_RATE_BP)]
Currency = Annotated[str, msgspec.Meta(pattern=r"\A[A-Z]{3}\Z")]


class _Base(msgspec.Struct, tag_field="type", frozen=True, gc=False, kw_only=True):
    event_id: Id
    occurred_at: str
    # Any integer is accepted here; 1 is the only supported value (checked after
    # decoding so that the reason code is unsupported_schema_version).
    schema_version: Union[int, None] = None


class Share(_Base, tag="share", frozen=True, gc=False):
    share_id: Id
    promoter_id: Id
    parent_share_id: Union[Id, None] = None
    target: Union[str, None] = None
    merchant_id: Union[Id, None] = None  # SPEC §14: the shop whose goods the share sells
    product_id: Union[Id, None] = None  # SPEC §14: the product it shows


class Click(_Base, tag="click", frozen=True, gc=False):
    buyer_id: Id
    share_id: Id


class Line(msgspec.Struct, frozen=True, gc=False):
    sku: Id
    quantity: PositiveInt
    unit_price: NonNegInt
    discount: Union[NonNegInt, None] = None
    level1_rate_bp: Union[RateBp, None] = None
    level2_rate_bp: Union[RateBp, None] = None
    product_id: Union[Id, None] = None  # SPEC §14: defaults to the sku (``line_product``)


class Order(_Base, tag="order", frozen=True, gc=False):
    order_id: Id
    buyer_id: Id
    merchant_id: Id
    lines: Annotated[list[Line], msgspec.Meta(min_length=1)]
    currency: Union[Currency, None] = None
    shipping: Union[NonNegInt, None] = None


class Refund(_Base, tag="refund", frozen=True, gc=False):
    refund_id: Id
    order_id: Id
    buyer_id: Id
    amount: PositiveInt


class Fulfillment(_Base, tag="fulfillment", frozen=True, gc=False):
    """SPEC §15: the order was shipped, or the buyer confirmed receipt."""

    order_id: Id
    buyer_id: Id
    stage: Literal["shipped", "received"]


Event = Union[Share, Click, Order, Refund, Fulfillment]
EVENT_TYPES = {"share": Share, "click": Click, "order": Order, "refund": Refund, "fulfillment": Fulfillment}

def order_currency(order: Order) -> str:
    return order.currency if order.currency is not None else "CNY"


def line_discount(line: Line) -> int:
    return line.discount if line.discount is not None else 0


def line_product(line: Line) -> str:
    """The line's product id: ``product_id``, else its ``sku`` (SPEC §1, §14)."""
    return line.product_id if line.product_id is not None else line.sku
