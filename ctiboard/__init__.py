from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ctiboard")
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    __version__ = "0.1.0"

PRODUCT_NAME = "ctiboard"
