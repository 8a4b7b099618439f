"""What a share can earn on (SPEC §14): coverage of an order's lines. Pure.

A share with neither ``merchant_id`` nor ``product_id`` covers everything;
``scope = "any"`` ignores both.
"""

from __future__ import annotations

ANY = "any"
MERCHANT = "merchant"
PRODUCT = "product"


def covers_merchant(share_merchant_id: str | None, order_merchant_id: str) -> bool:
    """The ``merchant`` condition: no merchant_id, or the order's."""
    return share_merchant_id is None or share_merchant_id == order_merchant_id


def covers(scope: str, share_merchant_id: str | None, share_product_id: str | None,
           order_merchant_id: str, line_product_id: str) -> bool:
    """Does a share cover a line (product id: ``product_id``, else ``sku``) of an order?"""
    if scope == ANY:
        return True
    if not covers_merchant(share_merchant_id, order_merchant_id):
        return False
    return scope == MERCHANT or share_product_id is None or share_product_id == line_product_id


def coverage_text(scope: str, share_id: str, share_merchant_id: str | None, share_product_id: str | None,
                  order_merchant_id: str, line_product_id: str, sku: str) -> str:
    """One line saying why a share covers a line or not (``explain``)."""
    head = f"share {share_id} {{}} sku {sku}: "
    if scope == ANY:
        return head.format("covers") + "scope any"
    if not covers_merchant(share_merchant_id, order_merchant_id):
        return head.format("does not cover") + f"merchant {share_merchant_id}, the order's is {order_merchant_id}"
    if scope == MERCHANT:
        return head.format("covers") + ("same merchant" if share_merchant_id is not None else "no merchant named")
    if share_product_id is None:
        return head.format("covers") + ("same merchant, no product named" if share_merchant_id is not None
                                        else "no merchant or product named")
    if share_product_id == line_product_id:
        return head.format("covers") + "same product"
    return head.format("does not cover") + f"product {share_product_id}, the line's is {line_product_id}"
