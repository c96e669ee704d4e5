"""The exception tree of corral and the one mapping from an exception to an HTTP status.

Every failure a client can cause or see is raised as a subclass of :class:`CorralError`; the
server turns it into ``{"error": message}`` with ``status``. Nothing else in the code base decides
a status code.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error corral reports to a client."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(CorralError):
    """The request is malformed or asks for something impossible (400)."""

    status = 400


class InvalidModelName(BadRequest):
    """A model name that does not follow the name grammar."""

    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message)


class ModelfileError(BadRequest):
    """A Modelfile that cannot be parsed or is semantically wrong."""


class TemplateError(BadRequest):
    """A prompt template that cannot be parsed or executed."""


class DigestMismatch(BadRequest):
    """Uploaded or downloaded bytes whose sha256 is not the one claimed."""


class Unauthorized(CorralError):
    status = 401


class Forbidden(CorralError):
    """Something the server refuses to do whoever asks, e.g. write outside the model store."""

    status = 403


class NotFound(CorralError):
    """A model, blob or route that does not exist (404)."""

    status = 404


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")


class Conflict(CorralError):
    status = 409


class PayloadTooLarge(CorralError):
    status = 413


class ServerBusy(CorralError):
    status = 503

    def __init__(
        self, message: str = "server busy, please try again.  maximum pending requests exceeded"
    ) -> None:
        super().__init__(message)


class InternalError(CorralError):
    """A failure inside corral or an engine that the client did not cause (500)."""

    status = 500
