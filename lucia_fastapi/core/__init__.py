"""The framework-free core: ``Auth`` and the values it deals in."""
