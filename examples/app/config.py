"""Settings, from the environment: nothing to set for a first run.

- ``DATABASE_URL``: default ``sqlite:///lucia_example.sqlite3`` (a file in the working directory); for PostgreSQL
  ``postgresql://user:password@host/dbname`` (``make run-postgres`` sets it).
- ``LUCIA_ENV``: ``DEV`` (default) or ``PROD``. PROD makes cookies ``Secure`` (serve it over HTTPS) and hides
  ``/docs``.
"""

from __future__ import annotations

import os
from typing import Literal

DATABASE_URL = os.environ.get("DATABASE_URL") or "sqlite:///lucia_example.sqlite3"
ENV: Literal["DEV", "PROD"] = "PROD" if os.environ.get("LUCIA_ENV", "DEV").upper() == "PROD" else "DEV"
DEV = ENV == "DEV"
