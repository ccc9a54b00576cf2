"""Settings, from the environment: nothing to set for a first run.

- ``DATABASE_URL``: default ``sqlite:///lucia_example.sqlite3`` (a file in the working directory); for PostgreSQL
  ``postgresql://user:password@host/dbname`` (``make run-postgres`` sets it).
- ``LUCIA_ENV``: ``DEV`` (default) or ``PROD``. PROD makes cookies ``Secure`` (serve it over HTTPS) and hides
  ``/docs``.
- ``LUCIA_EXAMPLE_REAUTH_SECONDS``: how long a proof of the account's strongest factor counts for sensitive actions
  (default 300): the policy's ``recent_auth_max_age``, one window for every sensitive route.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

DATABASE_URL = os.environ.get("DATABASE_URL") or "sqlite:///lucia_example.sqlite3"
ENV: Literal["DEV", "PROD"] = "PROD" if os.environ.get("LUCIA_ENV", "DEV").upper() == "PROD" else "DEV"
DEV = ENV == "DEV"
REAUTH_AFTER = timedelta(seconds=int(os.environ.get("LUCIA_EXAMPLE_REAUTH_SECONDS", "300")))
