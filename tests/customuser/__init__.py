"""A custom user model for tests only: e-mail as the username, no ``is_active`` field.

Used by ``tests/settings_customuser.py`` (``AUTH_USER_MODEL = "customuser.User"``) to
run every sub-command of the CLI against such a model in a subprocess.
"""
