"""Compat layer: flags from an OpenFeature provider, for a team that already runs Unleash,
LaunchDarkly, flagd or Flipper.

The adapter is one more flag source (compat.flags.sources.FlagSource): on each
read of the flags (the TTL poll, a pushed flip, or the provider's own
"configuration changed" event) it evaluates the string flag
``compat.<key>`` for every facade function, with no evaluation context (a
mode is a process-wide fact; our own ramp, ``@percent``, is what is sticky
per session). A value reads like ``COMPAT_FLAGS``: ``mode``, ``mode:rate``,
and ``mode@percent`` for a ramp (``live:0.5@10``). A flag the provider does
not have leaves the function to the other sources; a bad value, or an
evaluation that fails, is reported like any bad entry and the others apply.

It needs the optional extra ``openfeature`` (``openfeature-sdk``); without it,
naming a provider is a configuration problem, logged, never a failed call.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Final

from compat.errors import FlagError, InvalidFlagValue
from compat.flags.modes import Entries, Entry, parse_mode, parse_percent, parse_sample_rate

if TYPE_CHECKING:
    from openfeature.client import OpenFeatureClient

__all__ = ["DOMAIN", "FLAG_PREFIX", "OpenFeatureSource", "from_setting"]

DOMAIN: Final = "compat"
"""The OpenFeature domain the layer's client uses: ``api.set_provider(p, domain="compat")``."""
FLAG_PREFIX: Final = "compat."
"""A function's flag in the provider is ``compat.<key>``: ``compat.user_sessions.get_session``."""
APPLICATION: Final = "openfeature"
"""``COMPAT_FLAGS_PROVIDER=openfeature``: whatever provider the application registered."""

_VALUE: Final = re.compile(r"^\s*(?P<mode>[^:@\s]+)\s*(?::(?P<rate>[^@]+))?(?:@(?P<percent>.+))?$")
_FACTORY: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class OpenFeatureSource:
    """Each function's flag from an OpenFeature client, read entry by entry."""

    name: Final = "openfeature"

    def __init__(self, client: OpenFeatureClient, *, prefix: str = FLAG_PREFIX) -> None:
        self._client = client
        self.prefix = prefix

    def read(self, keys: Collection[str], problems: list[str]) -> Entries:
        """The entries the provider has; what it cannot give is a problem, not an exception."""
        from openfeature.exception import ErrorCode

        entries: Entries = {}
        for key in sorted(keys):
            flag = f"{self.prefix}{key}"
            try:
                details = self._client.get_string_details(flag, "")
            except Exception as error:  # a provider is someone else's code: never a failed call
                problems.append(f"{flag}: the provider raised {type(error).__name__}: {error}")
                continue
            if details.error_code is ErrorCode.FLAG_NOT_FOUND:
                continue  # not driven from the provider: the other sources decide
            if details.error_code is not None:
                problems.append(f"{flag}: {details.error_code.value}: {details.error_message}")
                continue
            if details.value == "":
                continue
            try:
                entries[key] = parse_value(key, details.value)
            except FlagError as error:
                problems.append(f"{flag}: {error}")
        return entries

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the provider says its configuration changed (a push)."""
        from openfeature.event import ProviderEvent

        self._client.add_handler(
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda details: callback()
        )


def parse_value(key: str, value: object) -> Entry:
    """``mode``, ``mode:rate``, ``mode@percent``, ``mode:rate@percent``, as one entry."""
    if not isinstance(value, str):
        raise InvalidFlagValue(f"{key}: the flag must be a string like 'live@10', not {value!r}")
    found = _VALUE.match(value)
    if found is None:
        raise InvalidFlagValue(f"{key}: {value!r} is not mode[:rate][@percent]")
    rate, percent = found["rate"], found["percent"]
    return Entry(
        parse_mode(key, found["mode"]),
        None if rate is None else parse_sample_rate(key, _number(key, rate)),
        None if percent is None else parse_percent(key, _number(key, percent)),
    )


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidFlagValue(f"{key}: {text.strip()!r} is not a number") from None


def _is_provider(candidate: object) -> bool:
    # FeatureProvider is a Protocol that cannot be checked at run time: its methods can.
    return all(
        callable(getattr(candidate, name, None))
        for name in ("resolve_string_details", "get_metadata", "initialize")
    )


def from_setting(text: str) -> OpenFeatureSource:
    """The source ``COMPAT_FLAGS_PROVIDER`` names; FlagError (one line) when it cannot be built.

    ``openfeature``: the provider the application registered for the
    ``compat`` domain (or its default provider). ``module:attribute``: a
    provider, or a callable returning one, registered for that domain here,
    so that every process (the application's and the CLI's) sees the same flags.
    """
    try:
        from openfeature import api
    except ImportError:
        raise InvalidFlagValue(
            "COMPAT_FLAGS_PROVIDER needs openfeature-sdk: "
            "pip install 'strangler-fig-db[openfeature]'"
        ) from None
    if text != APPLICATION:
        if not _FACTORY.match(text):
            raise InvalidFlagValue(
                f"COMPAT_FLAGS_PROVIDER={text!r} is not 'openfeature' or module:attribute"
            )
        module_name, _, attribute = text.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as error:
            raise InvalidFlagValue(
                f"COMPAT_FLAGS_PROVIDER={text!r} cannot be loaded: {type(error).__name__}: {error}"
            ) from None
        # A provider as it is, or a class or factory that makes one.
        made = isinstance(found, type) or (callable(found) and not _is_provider(found))
        provider = found() if made else found
        if not _is_provider(provider):
            raise InvalidFlagValue(
                f"COMPAT_FLAGS_PROVIDER={text!r} gave {type(provider).__name__}, "
                "not an OpenFeature provider"
            )
        api.set_provider(provider, domain=DOMAIN)
    return OpenFeatureSource(api.get_client(domain=DOMAIN))
