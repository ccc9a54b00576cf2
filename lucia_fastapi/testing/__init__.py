"""Test support: the adapter conformance suite, a clock tests can move, and throwaway servers (``postgres``)."""

from lucia_fastapi.testing.clock import ManualClock
from lucia_fastapi.testing.conformance import (
    ADAPTER_CASES,
    AdapterUnderTest,
    ConformanceFailure,
    run_adapter_conformance,
)

__all__ = ["ADAPTER_CASES", "AdapterUnderTest", "ConformanceFailure", "ManualClock", "run_adapter_conformance"]
