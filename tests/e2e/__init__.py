"""e2e tier (a package, so its conftest does not shadow tests/unit/conftest.py as module `conftest`)."""
