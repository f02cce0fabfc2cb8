"""The domain: the records every part shares and the rules on them. No I/O here."""

from spotbot.domain.records import *  # noqa: F403  (the records are the domain's public face)
from spotbot.domain.records import __all__  # noqa: F401
