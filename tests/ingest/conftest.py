from tests.ingest.support import tracebacks  # noqa: F401  (a fixture)
