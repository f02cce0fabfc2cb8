"""One error hierarchy for the whole library. Entry points map each kind to an exit code or HTTP status.

- BadInputError: the caller asked for something that is not valid (exit 2, HTTP 400).
- NotFoundError: what the caller named does not exist (exit 2, HTTP 404).
- ForbiddenError: the caller may not change what another principal made (exit 2, HTTP 403).
- ConflictError: valid, but it clashes with what exists (exit 2 or 3, HTTP 409).
- UnavailableError: something outside us is down or refusing; trying again later may work (exit 1, HTTP 503).
"""

from __future__ import annotations


class SpotbotError(Exception):
    """Every error the library raises on purpose; its message says what to do."""


class BadInputError(SpotbotError, ValueError):
    """The request, a setting or an argument is not valid."""


class FieldError(BadInputError):
    """A request field that is not valid; `field` names it the way the caller sent it (body.source, query.after)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ForbiddenError(SpotbotError, PermissionError):
    """The caller is not the principal that made the job or bot (nor the admin)."""


class NotFoundError(SpotbotError, LookupError):
    """The job, bot, model version or source named does not exist."""


class ConflictError(SpotbotError, ValueError):
    """Valid on its own, but it clashes with what exists (a job id taken by another job, a finished job)."""


class UnavailableError(SpotbotError, RuntimeError):
    """A service we depend on is down, refusing or out of time: a job-level condition, never an asset's fault."""


PERMANENT = (BadInputError, NotFoundError, ForbiddenError, ConflictError)


def permanent_error_names(modules: tuple[str, ...]) -> list[str]:
    """The names of the errors defined in `modules` (the caller has imported them) that a retry cannot
    mend: bad input, not found, forbidden, conflict, also where the class is an UnavailableError too
    (SourceNotFoundError is a ScanError). A step Lambda's error is named by its class; the state machine
    retries none of these. Only the modules named count, so the answer does not depend on what else
    was imported."""
    found: set[str] = set()
    pending: list[type] = [SpotbotError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if issubclass(cls, PERMANENT) and cls.__module__ in modules:
            found.add(cls.__name__)
    return sorted(found)
