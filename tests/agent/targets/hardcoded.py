"""A module with secrets written into its source: the source view must mask them."""

from __future__ import annotations

STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"  # @stripe
DATABASES = {"default": {"PASSWORD": "hunter2-in-source", "HOST": "db.internal"}}
SIGNING = """-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA75bKQk1TXkv7x
-----END RSA PRIVATE KEY-----"""
DSN = "postgres://shop:pg-pass-in-source@db/shop"
GREETING = "hello"


def charge(amount: int, api_token: str = "tok-default-in-source") -> int:
    total = amount * 2  # @charge
    return total
