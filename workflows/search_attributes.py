"""Custom search attributes that let an operator find a delivery in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TENANT = SearchAttributeKey.for_keyword("HooklineTenant")
ENDPOINT = SearchAttributeKey.for_keyword("HooklineEndpoint")
EVENT_TYPE = SearchAttributeKey.for_keyword("HooklineEventType")
STATUS = SearchAttributeKey.for_keyword("HooklineStatus")

ALL = (TENANT, ENDPOINT, EVENT_TYPE, STATUS)


def dev_server_flags() -> list[str]:
    """`--search-attribute` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
