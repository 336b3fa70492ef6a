import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here (not in pyproject.toml) with the soak test it marks.
    config.addinivalue_line(
        "markers",
        "soak: random faults against the simulator; CTIBOARD_SOAK_SECONDS sets the duration",
    )


from tests.ingest.support import tracebacks  # noqa: E402, F401  (a fixture)
