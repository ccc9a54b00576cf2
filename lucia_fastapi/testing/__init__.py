"""Test support: the adapter conformance suite, and a throwaway PostgreSQL server."""

from lucia_fastapi.testing.conformance import (
    ADAPTER_CASES,
    AdapterUnderTest,
    ConformanceFailure,
    run_adapter_conformance,
)

__all__ = ["ADAPTER_CASES", "AdapterUnderTest", "ConformanceFailure", "run_adapter_conformance"]
