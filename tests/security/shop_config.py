"""Configuration with secrets written into the source: the source view masks its literals."""

STRIPE_KEY = "sk_live_Lq8vTz2Kp4Wm9Xr6Ny3Bc7Hd"
SECRET_KEY = "lit-secret-key-Gh47Tq2Mz9"
DATABASE_URL = "postgres://shop:lit-db-pw-Rk38Vn@db.internal:5432/shop"
SIGNING_PEM = """-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIlitpemBodyZq84Kw2Lx9Nv3Tb
-----END EC PRIVATE KEY-----"""
TIMEOUT = 30
# --- where it runs ---
REGION = "eu-west-1"  # after a form feed, as in many source files
