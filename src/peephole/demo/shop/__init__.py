"""A small web shop API: a catalog, carts, coupons and a checkout.

It exists so there is something realistic to debug. Like most shops it has bugs that only
show with some data; finding them with tracepoints is the point of the demo.
Run it with ``python -m peephole.demo.shop --port 8000``.
"""
