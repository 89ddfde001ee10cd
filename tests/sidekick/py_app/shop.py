"""The probed module of the small app for the real Sidekick Python agent."""


class User:
    def __init__(self, name, vip):
        self.name = name
        self.vip = vip


def checkout(cart, user):
    total = sum(item["price"] * item["qty"] for item in cart["items"])
    discount = 5 if user.vip else 0
    return total - discount  # @checkout


def fail(count):
    raise ValueError(f"boom {count}")  # @boom


def receipt(count, cart, total):
    return f"done {count} {total} for {cart['id']}"  # @after
