"""Operations: readiness, Prometheus metrics, JSON logs and graceful socket shutdown.

Not a Django app: plain modules that settings, urls and asgi import.
"""
