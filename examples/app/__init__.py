"""The lucia_fastapi example app, as a package: ``examples.app.main:app`` is the ASGI app (``make run`` serves it).

- ``config.py``   settings from the environment (database, base URL, secrets, mail, OAuth providers, Redis)
- ``main.py``     the app: ``AuthStack`` with every flow mounted in one line, and the app's own pages
- ``security.py`` security headers and a request-body limit (pure ASGI middleware)
- ``templates/``  the app's look (``lucia/base.html``, replacing the library's layout) and its own pages
- ``static/``     its stylesheet and icon
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``examples.app:app`` still names the app (the older target), without importing it for a submodule."""
    if name == "app":
        from examples.app.main import app

        return app
    raise AttributeError(name)
