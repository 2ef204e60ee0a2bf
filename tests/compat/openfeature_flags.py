"""An OpenFeature provider a process loads by name (COMPAT_FLAGS_PROVIDER=this module:provider).

The SDK's own in-memory provider: what a team's Unleash, LaunchDarkly or flagd
provider is to the layer, a FeatureProvider answering string flags.
"""

from __future__ import annotations

from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider


def flag(value: str) -> InMemoryFlag[str]:
    return InMemoryFlag("on", {"on": value})


def provider() -> InMemoryProvider:
    return InMemoryProvider(
        {
            "compat.user_sessions.get_session": flag("live@10"),
            "compat.uploads.get_upload": flag("sideways"),
        }
    )
