"""Shopping carts and what is in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from peephole.demo.shop.catalog import Product

MAX_QUANTITY = 99


@dataclass
class CartLine:
    product: Product
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


@dataclass
class Cart:
    id: str
    lines: List[CartLine] = field(default_factory=list)

    def add(self, product: Product, quantity: int) -> None:
        """Add ``quantity`` of ``product``, merging with a line that already has it."""
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be between 1 and {MAX_QUANTITY}")
        for line in self.lines:
            if line.product.id == product.id:
                line.quantity = min(line.quantity + quantity, MAX_QUANTITY)
                return
        self.lines.append(CartLine(product, quantity))

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def subtotal_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "lines": [
                {
                    "product_id": line.product.id,
                    "name": line.product.name,
                    "quantity": line.quantity,
                    "total_cents": line.total_cents,
                }
                for line in self.lines
            ],
            "item_count": self.item_count,
            "subtotal_cents": self.subtotal_cents,
        }


__all__ = ["Cart", "CartLine"]  # at the end: the docs cite this module's line numbers
