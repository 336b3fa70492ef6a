from tests.pbx.support import tracebacks  # noqa: F401  (a fixture)
