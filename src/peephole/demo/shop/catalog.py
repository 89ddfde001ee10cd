"""The products the shop sells."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price_cents: int
    weight_grams: int


PRODUCTS: List[Product] = [
    Product("bk-101", "The Pragmatic Programmer", "books", 3999, 540),
    Product("bk-102", "Designing Data-Intensive Applications", "books", 4599, 920),
    Product("bk-103", "Python Cookbook", "books", 3499, 1100),
    Product("gm-201", "Catan", "games", 4499, 1800),
    Product("gm-202", "Ticket to Ride", "games", 3999, 1600),
    Product("gm-203", "Hanabi", "games", 1099, 150),
    Product("kt-301", "Chef's Knife", "kitchen", 8900, 300),
    Product("kt-302", "Cast Iron Skillet", "kitchen", 3450, 2600),
    Product("kt-303", "Pepper Mill", "kitchen", 2450, 400),
    Product("gc-401", "Gift Card 25", "gift-cards", 2500, 0),
    Product("gc-402", "Gift Card 50", "gift-cards", 5000, 0),
]

CATALOG: Dict[str, Product] = {product.id: product for product in PRODUCTS}


class UnknownProduct(LookupError):
    """A product id the catalog does not have."""


def find_product(product_id: str) -> Product:
    try:
        return CATALOG[product_id]
    except KeyError:
        raise UnknownProduct(f"no product {product_id!r}") from None


__all__ = [
    "PRODUCTS",
    "Product",
    "UnknownProduct",
    "find_product",
]  # at the end: the docs cite this module's line numbers
