"""The errors the CTI client raises (kept apart so that tokens and client can both raise them)."""


class CTIError(Exception):
    """The CTI API answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        # Seconds the server asked us to wait (Retry-After of a 503), if it said so.
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = super().__str__()
        if self.status is not None:
            text = f"{text} (HTTP {self.status})"
        if self.request_id:
            text = f"{text} [request id {self.request_id}]"
        return text


class AuthenticationFailed(CTIError):
    """The credentials were refused: retrying with the same ones cannot help."""


class CallNotFound(CTIError):
    """The call uuid is unknown to the PBX (finished already, or never existed)."""
