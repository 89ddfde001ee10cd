"""A small app for the real Sidekick Python agent (CPython 3.8): every line on stdin is one
checkout ("boom" raises and catches an error), so a test decides when the probed line runs.
Broker host, port, key and names come from the SIDEKICK_* environment variables."""

import sys

import shop
import tracepointdebug


def main():
    tracepointdebug.start()
    print("agent started", flush=True)
    for count, line in enumerate(sys.stdin, 1):
        if line.strip() == "boom":
            try:
                shop.fail(count)
            except ValueError:
                pass
            print(f"done {count} boom", flush=True)
            continue
        cart = {"id": f"c{count}", "items": [{"sku": "tea", "price": 5, "qty": 3}]}
        result = shop.checkout(cart, shop.User("alice", line.strip() == "vip"))  # @call
        print(shop.receipt(count, cart, result), flush=True)


if __name__ == "__main__":
    main()
