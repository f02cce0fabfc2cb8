"""What every Step Functions step Lambda shares: Powertools' logger (with the Lambda context) and
tracer, one way of parsing the state input into a pydantic model, and its services built once per
container. The handlers in lambdas/<name>/handler.py are these, wired to one service each."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from pydantic import TypeAdapter, ValidationError

from spotbot.domain import BadInputError
from spotbot.settings import Settings, load_role

T = TypeVar("T")
R = TypeVar("R", bound=Settings)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class StepInputError(BadInputError):
    """A step's input is not what the state machine should pass (a missing or malformed field)."""


def parse_event(shape: type[T] | TypeAdapter[T], event: Any, *, step: str, error: type[BadInputError] = StepInputError) -> T:
    """The event as `shape`; `error` naming every field at fault when it is not one."""
    adapter = shape if isinstance(shape, TypeAdapter) else TypeAdapter(shape)
    try:
        return adapter.validate_python(event)
    except ValidationError as invalid:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in invalid.errors())
        raise error(f"{step} step input is not valid: {problems}") from None


class Step:
    """One step Lambda's logger and tracer; `handler` wraps the function that does the step."""

    def __init__(self, service: str) -> None:
        self.logger = Logger(service=service)
        self.tracer = Tracer(service=service)
        copy_config_to_registered_loggers(source_logger=self.logger, include={"spotbot"})  # spotbot's lines as JSON too

    def handler(self, function: Handler) -> Handler:
        traced = self.tracer.capture_lambda_handler(function, capture_response=False)
        return self.logger.inject_lambda_context(traced, clear_state=True)



class PerContainer(Generic[R, T]):
    """A step's services, built from its role's settings once per container: `services()` loads the
    settings (load_role: from the environment, naming what is missing) and builds again only for other
    settings (as tests set them). `cache_clear()` forgets what was built."""

    def __init__(self, role: type[R], build: Callable[[R], T]) -> None:
        self.role, self.build = role, build
        self._built = functools.lru_cache(maxsize=4)(self._build)
        functools.update_wrapper(self, build)

    def _build(self, settings_json: str) -> T:
        return self.build(self.role.model_validate_json(settings_json))

    def __call__(self) -> T:
        return self._built(load_role(self.role).model_dump_json())

    def cache_clear(self) -> None:
        self._built.cache_clear()


def per_container(role: type[R]) -> Callable[[Callable[[R], T]], PerContainer[R, T]]:
    """Decorates `build(settings) -> services`: see PerContainer."""
    return lambda build: PerContainer(role, build)
