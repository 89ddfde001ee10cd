"""A settings module: the source view never serves it (deny-list default ``*settings*.py``)."""

DEBUG = False
ADMIN_EMAIL = "ops@example.com"
