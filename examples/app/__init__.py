"""The lucia_fastapi example app, as a package: ``examples.app.main:app`` is the ASGI app (``make run`` serves it).

Layout — one module per flow, so a new flow plugs in with one line in ``main.py``:

- ``config.py``   settings from the environment (``DATABASE_URL``, ``LUCIA_ENV``)
- ``db.py``       the schema, engine and ``Auth`` object (the only module that knows how the library is set up)
- ``security.py`` security headers and a request-body limit (pure ASGI middleware)
- ``forms.py``    input validation: linear-time and length-bounded before any parsing
- ``pages.py``    templates, the navigation, the signed-in check for pages, notices
- ``errors.py``   human error pages (401/403/404/429/503) and the JSON errors of ``/api/``
- ``devices.py``  readable device names from a User-Agent
- ``routes/``     account (sign up / in / out), profile, sessions, password, security, delete account, api
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``examples.app:app`` still names the app (the older target), without importing it for a submodule."""
    if name == "app":
        from examples.app.main import app

        return app
    raise AttributeError(name)
