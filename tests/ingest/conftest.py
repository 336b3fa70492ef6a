from tests.ingest.support import tracebacks  # noqa: E402, F401  (a fixture)
