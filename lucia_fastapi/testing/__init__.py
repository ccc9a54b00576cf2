"""Test support: the adapter and rate-limit store conformance suites, a clock tests can move, one request sent to
an app in-process (``ASGIRequest``), and throwaway servers (``postgres``, ``redis``)."""

from lucia_fastapi.testing.asgi import ASGIRequest
from lucia_fastapi.testing.clock import ManualClock
from lucia_fastapi.testing.conformance import (
    ADAPTER_CASES,
    AdapterUnderTest,
    ConformanceFailure,
    run_adapter_conformance,
)
from lucia_fastapi.testing.ratelimit_conformance import (
    RATE_LIMIT_STORE_CASES,
    RateLimitStoreUnderTest,
    run_rate_limit_store_conformance,
)
from lucia_fastapi.testing.redis import RedisServer, RedisUnavailable

__all__ = [
    "ADAPTER_CASES",
    "RATE_LIMIT_STORE_CASES",
    "ASGIRequest",
    "AdapterUnderTest",
    "ConformanceFailure",
    "ManualClock",
    "RateLimitStoreUnderTest",
    "RedisServer",
    "RedisUnavailable",
    "run_adapter_conformance",
    "run_rate_limit_store_conformance",
]
