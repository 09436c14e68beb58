"""The event-type catalog: which event types exist and which subscription patterns are valid.

A catalog is a JSON file (format in service/catalog_data/README.md); the packaged default is
service/catalog_data/default.json. Subscriptions are lists of patterns, each one of

* an exact event type name ("message.sent"),
* "*" for every event type,
* "<prefix>.*" where <prefix> is a whole-segment dot-prefix of at least one event type
  ("call.*" and "call.recording.*" match "call.recording.paused"; "cal.*" matches nothing).

Matching is done by lookup rather than by scanning subscriptions: `Catalog.patterns_matching`
lists every pattern that matches a given event type, so a store can index subscription patterns
and select subscribers with `pattern IN (...)`.
"""

from __future__ import annotations

import builtins
import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NoReturn

ALL_EVENTS = "*"
WILDCARD_SUFFIX = ".*"
SUPPORTED_VERSION = 1
DEFAULT_PACKAGE = "service"
DEFAULT_RESOURCE = ("catalog_data", "default.json")

_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_TOP_KEYS = frozenset({"name", "version", "groups", "event_types"})
_GROUP_KEYS = frozenset({"id", "title", "description"})
_TYPE_KEYS = frozenset({"name", "group", "description", "deprecated", "replaced_by"})


@dataclass(frozen=True)
class EventTypeInfo:
    name: str
    group: str
    description: str
    deprecated: bool
    replaced_by: str


@dataclass(frozen=True)
class Group:
    id: str
    title: str
    description: str


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def is_valid_name(name: str) -> bool:
    """Whether `name` has the shape of an event type name (not whether any catalog has it)."""
    return _NAME.fullmatch(name) is not None


def _dot_prefixes(name: str) -> builtins.list[str]:
    """Proper whole-segment prefixes, shortest first: "a.b.c" -> ["a", "a.b"]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class Catalog:
    """An immutable, validated set of event types in groups, in file order."""

    name: str
    version: int
    source: str

    def __init__(
        self,
        name: str,
        groups: Iterable[Group],
        event_types: Iterable[EventTypeInfo],
        *,
        version: int = SUPPORTED_VERSION,
        source: str = "<catalog>",
    ) -> None:
        """Build a catalog, raising CatalogError (naming `source`) if it is inconsistent."""
        self.name = name
        self.version = version
        self.source = source
        self._groups = tuple(groups)
        self._types = tuple(event_types)
        if not name.strip():
            self._fail("catalog name is empty")
        if version != SUPPORTED_VERSION:
            self._fail(f"unsupported version {version} (supported: {SUPPORTED_VERSION})")

        group_ids: set[str] = set()
        for index, group in enumerate(self._groups):
            if not group.id.strip():
                self._fail(f"groups[{index}]: empty group id")
            if group.id in group_ids:
                self._fail(f'groups[{index}]: duplicate group id "{group.id}"')
            group_ids.add(group.id)
        self._group_ids = frozenset(group_ids)

        by_name: dict[str, EventTypeInfo] = {}
        for index, info in enumerate(self._types):
            where = f'event_types[{index}] ("{info.name}")'
            if not is_valid_name(info.name):
                self._fail(f"{where}: invalid event type name (expected {_NAME.pattern})")
            if info.name in by_name:
                self._fail(f"{where}: duplicate event type name")
            if info.group not in self._group_ids:
                self._fail(f'{where}: unknown group "{info.group}"')
            if info.replaced_by and not info.deprecated:
                self._fail(f"{where}: replaced_by is set but the type is not deprecated")
            by_name[info.name] = info
        for index, info in enumerate(self._types):
            if not info.replaced_by:
                continue
            where = f'event_types[{index}] ("{info.name}")'
            replacement = by_name.get(info.replaced_by)
            if replacement is None:
                self._fail(f'{where}: replaced_by "{info.replaced_by}" is not in the catalog')
            if replacement.deprecated:
                self._fail(f'{where}: replaced_by "{info.replaced_by}" is itself deprecated')
        self._by_name = by_name
        self._prefixes = frozenset(p for n in by_name for p in _dot_prefixes(n))

    def _fail(self, problem: str) -> NoReturn:
        raise CatalogError(self.source, problem)

    # Loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """Read and validate a catalog file; None means the packaged default catalog."""
        if path is None:
            resource = resources.files(DEFAULT_PACKAGE)
            for part in DEFAULT_RESOURCE:
                resource = resource / part
            source = str(resource)
        else:
            source = str(path)
        try:
            if path is None:
                text = resource.read_text(encoding="utf-8")
            else:
                text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogError(source, f"not UTF-8 text ({exc.reason})") from exc
        except OSError as exc:
            raise CatalogError(source, f"cannot read file: {exc.strerror or exc}") from exc
        return cls.from_json(text, source=source)

    @classmethod
    def from_json(cls, text: str, *, source: str = "<catalog>") -> Catalog:
        """Parse and validate catalog JSON text; errors name `source`."""
        try:
            data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except _DuplicateKeyError as exc:
            raise CatalogError(source, f'duplicate JSON key "{exc.key}"') from exc
        except json.JSONDecodeError as exc:
            raise CatalogError(
                source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        return _Parser(source).catalog(cls, data)

    # Queries ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"Catalog(name={self.name!r}, event_types={len(self)}, source={self.source!r})"

    def get(self, name: str) -> EventTypeInfo | None:
        return self._by_name.get(name)

    def groups(self) -> builtins.list[Group]:
        return list(self._groups)

    def has_group(self, group: str) -> bool:
        return group in self._group_ids

    def list(
        self, *, group: str = "", include_deprecated: bool = True
    ) -> builtins.list[EventTypeInfo]:
        """Event types in catalog order, optionally only one group's ("" = all groups)."""
        return [
            info
            for info in self._types
            if (not group or info.group == group) and (include_deprecated or not info.deprecated)
        ]

    # Subscriptions ---------------------------------------------------------------------------

    def subscription_errors(self, patterns: Sequence[str]) -> builtins.list[tuple[int, str]]:
        """(index, message) for each unusable entry; empty when every entry is valid.

        Deprecated types are still valid. An exact repeat of an earlier valid entry is reported
        as a duplicate at the later index; overlapping entries ("call.*" and "call.completed")
        are not errors.
        """
        errors: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, pattern in enumerate(patterns):
            problem = self._pattern_error(pattern)
            if problem is None and pattern in seen:
                problem = f'duplicate entry "{pattern}"'
            if problem is not None:
                errors.append((index, problem))
            seen.add(pattern)
        return errors

    def normalize_subscriptions(self, patterns: Sequence[str]) -> builtins.list[str]:
        """Drop exact repeats, keeping first occurrences in order. Validate first."""
        return list(dict.fromkeys(patterns))

    def _pattern_error(self, pattern: str) -> str | None:
        if not pattern.strip():
            return "empty event type"
        if pattern != pattern.strip():
            return f'event type "{pattern}" has leading or trailing whitespace'
        if pattern == ALL_EVENTS:
            return None
        if "*" in pattern:
            prefix = pattern.removesuffix(WILDCARD_SUFFIX)
            if prefix == pattern or not is_valid_name(prefix):
                return f'invalid wildcard "{pattern}": only "*" and "<prefix>.*" are supported'
            if prefix in self._prefixes:
                return None
            if prefix in self._by_name:
                hint = f' (did you mean "{prefix}"?)'
            else:
                hint = _suggest(prefix, self._prefixes, WILDCARD_SUFFIX)
            return f'wildcard "{pattern}" matches no event type' + hint
        if pattern in self._by_name:
            return None
        if pattern in self._prefixes:
            hint = f' (did you mean "{pattern}{WILDCARD_SUFFIX}"?)'
        else:
            hint = _suggest(pattern, self._by_name)
        return f'unknown event type "{pattern}"' + hint

    @staticmethod
    def patterns_matching(event_type: str) -> builtins.list[str]:
        """Every subscription pattern that matches `event_type`, for an indexed IN lookup.

        "call.recording.paused" -> ["*", "call.recording.paused", "call.*", "call.recording.*"]
        """
        wildcards = [prefix + WILDCARD_SUFFIX for prefix in _dot_prefixes(event_type)]
        return [ALL_EVENTS, event_type, *wildcards]

    @staticmethod
    def pattern_matches(pattern: str, event_type: str) -> bool:
        """Whether one subscription pattern matches an event type name."""
        if pattern == ALL_EVENTS:
            return True
        if pattern.endswith(WILDCARD_SUFFIX):
            # "call.*" -> "call.": a whole-segment prefix, since names have no empty segments.
            return event_type.startswith(pattern[:-1])
        return pattern == event_type


def _suggest(word: str, candidates: Iterable[str], suffix: str = "") -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f' (did you mean "{close[0]}{suffix}"?)' if close else ""


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: builtins.list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


class _Parser:
    """Checks the JSON shape (types, required and unknown keys) before Catalog checks meaning."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str) -> CatalogError:
        return CatalogError(self.source, problem)

    def catalog(self, cls: type[Catalog], data: object) -> Catalog:
        top = self.obj(data, "top level", _TOP_KEYS, required=_TOP_KEYS)
        version = top["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise self.fail('"version" must be an integer')
        groups = [
            self.group(item, f"groups[{i}]") for i, item in enumerate(self.array(top, "groups"))
        ]
        event_types = [
            self.event_type(item, f"event_types[{i}]")
            for i, item in enumerate(self.array(top, "event_types"))
        ]
        name = self.string(top, "name", "top level")
        return cls(name, groups, event_types, version=version, source=self.source)

    def group(self, data: object, where: str) -> Group:
        obj = self.obj(data, where, _GROUP_KEYS, required=frozenset({"id", "title"}))
        return Group(
            id=self.string(obj, "id", where),
            title=self.string(obj, "title", where),
            description=self.string(obj, "description", where),
        )

    def event_type(self, data: object, where: str) -> EventTypeInfo:
        obj = self.obj(data, where, _TYPE_KEYS, required=frozenset({"name", "group"}))
        deprecated = obj.get("deprecated", False)
        if not isinstance(deprecated, bool):
            raise self.fail(f'{where}: "deprecated" must be true or false')
        return EventTypeInfo(
            name=self.string(obj, "name", where),
            group=self.string(obj, "group", where),
            description=self.string(obj, "description", where),
            deprecated=deprecated,
            replaced_by=self.string(obj, "replaced_by", where),
        )

    def obj(
        self, data: object, where: str, allowed: frozenset[str], *, required: frozenset[str]
    ) -> dict[str, object]:
        if not isinstance(data, dict):
            raise self.fail(f"{where}: expected a JSON object")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(f'{where}: unknown key "{unknown[0]}"')
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(f'{where}: missing key "{missing[0]}"')
        return data

    def array(self, obj: dict[str, object], key: str) -> builtins.list[object]:
        value = obj[key]
        if not isinstance(value, list):
            raise self.fail(f'"{key}" must be a JSON array')
        return value

    def string(self, obj: dict[str, object], key: str, where: str) -> str:
        value = obj.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f'{where}: "{key}" must be a string')
        return value
