"""A settings module: the source view never serves it, whatever it holds."""

ADMIN_HINT = "settings-only-Wp73Kd9Qx"  # no secret shape: only the deny-list protects it
