from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from service.catalog import Catalog, CatalogError, EventTypeInfo, Group

EXAMPLES = Path(__file__).resolve().parents[2] / "service" / "catalog_data" / "examples"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


# Default catalog -------------------------------------------------------------------------------


def test_packaged_default_is_a_resource() -> None:
    resource = resources.files("service") / "catalog_data" / "default.json"
    assert resource.is_file()
    assert json.loads(resource.read_text(encoding="utf-8"))["name"] == "orbit"


def test_default_counts(catalog: Catalog) -> None:
    assert catalog.name == "orbit"
    assert len(catalog) == 176
    assert len(catalog.list()) == 176
    assert len({t.name for t in catalog.list()}) == 176
    groups = catalog.groups()
    assert [g.id for g in groups] == [
        "message",
        "contact",
        "campaign",
        "voice",
        "agent",
        "flow",
        "verification",
        "number_porting",
        "conversation",
        "list_segment",
        "webhook_endpoint",
        "billing",
        "channel_failover",
        "push",
        "number_masking",
        "whatsapp",
        "supervisor",
        "sip_trunk",
        "cdp",
        "other",
    ]
    for group in groups:
        assert group.title
        assert group.description
        assert catalog.has_group(group.id)
        assert catalog.list(group=group.id), f"group {group.id} has no event types"
    assert sum(len(catalog.list(group=g.id)) for g in groups) == 176
    assert not catalog.has_group("nope")
    assert catalog.list(group="nope") == []


@pytest.mark.parametrize(
    "name",
    [
        "message.created",
        "message.recipient_deactivated",
        "message.replied",
        "call.recording.paused",
        "agent.dnc.marked",
        "agent.response",
        "whatsapp.tracking_events",
        "whatsapp.template.components_update",
        "whatsapp.history",
        "wallboard.sla_warning",
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
        "recording.retention_deleted",
        "porting.request.manual_review_required",
        "cdp.event.ingested",
    ],
)
def test_default_names(catalog: Catalog, name: str) -> None:
    info = catalog.get(name)
    assert info is not None
    assert info.name == name
    assert info.description
    assert name in catalog


def test_default_descriptions_split_from_names(catalog: Catalog) -> None:
    created = catalog.get("message.created")
    assert created is not None
    assert created.description.startswith("Platform-defined")
    deactivated = catalog.get("message.recipient_deactivated")
    assert deactivated is not None
    assert deactivated.description.startswith("Carrier number deactivation sweep")
    assert deactivated.group == "message"
    masked = catalog.get("proxy.session.created")
    assert masked is not None
    assert masked.group == "number_masking"
    for info in catalog.list():
        assert info.description[:1].isupper() or not info.description[:1].isalpha(), info


def test_deprecated(catalog: Catalog) -> None:
    deprecated = [t for t in catalog.list() if t.deprecated]
    assert {(t.name, t.replaced_by) for t in deprecated} == {
        ("credits.purchased", "balance.topped_up"),
        ("credits.low", "balance.low"),
    }
    for info in deprecated:
        replacement = catalog.get(info.replaced_by)
        assert replacement is not None
        assert not replacement.deprecated
    current = catalog.list(include_deprecated=False)
    assert len(current) == 174
    assert all(not t.deprecated and t.replaced_by == "" for t in current)
    billing = [t.name for t in catalog.list(group="billing", include_deprecated=False)]
    assert "credits.low" not in billing
    assert "balance.low" in billing
    # Deprecated types can still be subscribed to.
    assert catalog.subscription_errors(["credits.low", "credits.purchased"]) == []


def test_list_is_in_catalog_order(catalog: Catalog) -> None:
    names = [t.name for t in catalog.list()]
    assert names[:3] == ["message.created", "message.sent", "message.delivered"]
    assert names[-1] == "wallboard.sla_warning"
    voice = [t.name for t in catalog.list(group="voice")]
    assert voice.index("call.recording.paused") < voice.index("call.recording.resumed")


def test_event_types_are_frozen(catalog: Catalog) -> None:
    info = catalog.get("message.sent")
    assert isinstance(info, EventTypeInfo)
    with pytest.raises(AttributeError):
        info.name = "x"  # type: ignore[misc]
    group = catalog.groups()[0]
    assert isinstance(group, Group)
    with pytest.raises(AttributeError):
        group.id = "x"  # type: ignore[misc]


def test_returned_lists_are_copies(catalog: Catalog) -> None:
    catalog.list().clear()
    catalog.groups().clear()
    assert len(catalog.list()) == 176
    assert len(catalog.groups()) == 20


# Example catalogs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "name", "count", "groups", "valid", "unknown"),
    [
        (
            "delivery.json",
            "delivery",
            19,
            ["delivery", "contact", "segment", "campaign", "billing"],
            ["delivery.*", "contact.created", "contact.updated", "billing.credit_low"],
            "delivery.bounce",
        ),
        (
            "voice_calls.json",
            "voice_calls",
            18,
            ["outbound", "inbound"],
            ["OUTBOUND_CALL_COMPLETED", "OUTBOUND_CALL_NO_RESPONSE", "INBOUND_CALL_ERROR"],
            "OUTBOUND_CALL_DROPPED",
        ),
        (
            "telephony.json",
            "telephony",
            5,
            ["call", "sms", "contact"],
            ["CALL_RECEIVED", "SMS_SENT"],
            "MMS_SENT",
        ),
    ],
)
def test_example_catalogs(
    file: str, name: str, count: int, groups: list[str], valid: list[str], unknown: str
) -> None:
    example = Catalog.load(EXAMPLES / file)
    assert example.name == name
    assert len(example) == count
    assert [g.id for g in example.groups()] == groups
    for group in example.groups():
        assert example.list(group=group.id)
    assert all(t.description for t in example.list())
    assert example.subscription_errors(valid) == []
    assert example.subscription_errors(["*"]) == []
    errors = example.subscription_errors([*valid, unknown])
    assert len(errors) == 1
    assert errors[0][0] == len(valid)
    assert errors[0][1].startswith(f'unknown event type "{unknown}"')


def test_example_catalog_details() -> None:
    voice = Catalog.load(EXAMPLES / "voice_calls.json")
    assert len(voice.list(group="outbound")) == 12
    assert len(voice.list(group="inbound")) == 6
    # Undotted names have no prefixes, so only exact names and "*" apply.
    assert voice.subscription_errors(["OUTBOUND_CALL.*"]) == [
        (0, 'wildcard "OUTBOUND_CALL.*" matches no event type')
    ]
    telephony = Catalog.load(EXAMPLES / "telephony.json")
    assert [t.name for t in telephony.list(group="sms")] == ["SMS_RECEIVED", "SMS_SENT"]
    delivery = Catalog.load(EXAMPLES / "delivery.json")
    bounced = delivery.get("delivery.bounced")
    assert bounced is not None
    assert "bounce_type" in bounced.description


# Subscription validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "patterns",
    [
        [],
        ["*"],
        ["message.sent"],
        ["call.*"],
        ["call.recording.*"],
        ["call.*", "call.recording.*", "call.recording.paused", "*"],
        ["whatsapp.template.*", "webhook_endpoint.*", "agent.dnc.marked"],
        ["credits.low"],
    ],
)
def test_valid_subscriptions(catalog: Catalog, patterns: list[str]) -> None:
    assert catalog.subscription_errors(patterns) == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty event type"),
        ("   ", "empty event type"),
        ("mesage.sent", 'unknown event type "mesage.sent" (did you mean "message.sent"?)'),
        ("message.snet", 'unknown event type "message.snet" (did you mean "message.sent"?)'),
        ("zzz.qqq", 'unknown event type "zzz.qqq"'),
        ("Message.Sent", 'unknown event type "Message.Sent" (did you mean "message.sent"?)'),
        ("call", 'unknown event type "call" (did you mean "call.*"?)'),
        (
            "call.recording",
            'unknown event type "call.recording" (did you mean "call.recording.*"?)',
        ),
        ("cal.*", 'wildcard "cal.*" matches no event type (did you mean "call.*"?)'),
        (
            "call.recording.x.*",
            'wildcard "call.recording.x.*" matches no event type'
            ' (did you mean "call.recording.*"?)',
        ),
        (
            "call.recording.paused.*",
            'wildcard "call.recording.paused.*" matches no event type'
            ' (did you mean "call.recording.paused"?)',
        ),
        ("nothing.*", 'wildcard "nothing.*" matches no event type'),
        ("call*", 'invalid wildcard "call*": only "*" and "<prefix>.*" are supported'),
        ("*.sent", 'invalid wildcard "*.sent": only "*" and "<prefix>.*" are supported'),
        ("call.*.*", 'invalid wildcard "call.*.*": only "*" and "<prefix>.*" are supported'),
        (".*", 'invalid wildcard ".*": only "*" and "<prefix>.*" are supported'),
        ("**", 'invalid wildcard "**": only "*" and "<prefix>.*" are supported'),
        (
            " message.sent",
            'event type " message.sent" has leading or trailing whitespace',
        ),
        (
            "message.sent\n",
            'event type "message.sent\n" has leading or trailing whitespace',
        ),
    ],
)
def test_invalid_subscription_entry(catalog: Catalog, pattern: str, message: str) -> None:
    assert catalog.subscription_errors([pattern]) == [(0, message)]


def test_duplicates(catalog: Catalog) -> None:
    patterns = ["message.sent", "call.*", "message.sent", "*", "call.*", "*"]
    assert catalog.subscription_errors(patterns) == [
        (2, 'duplicate entry "message.sent"'),
        (4, 'duplicate entry "call.*"'),
        (5, 'duplicate entry "*"'),
    ]
    assert catalog.normalize_subscriptions(patterns) == ["message.sent", "call.*", "*"]
    assert catalog.normalize_subscriptions([]) == []


def test_several_errors_each_with_its_index(catalog: Catalog) -> None:
    patterns = [
        "message.sent",
        "mesage.sent",
        "",
        "call.*",
        "cal.*",
        "message.sent",
        "call.recording.paused",
        "mesage.sent",
    ]
    errors = catalog.subscription_errors(patterns)
    assert [index for index, _ in errors] == [1, 2, 4, 5, 7]
    messages = dict(errors)
    assert messages[1].startswith('unknown event type "mesage.sent"')
    assert messages[2] == "empty event type"
    assert messages[4].startswith('wildcard "cal.*" matches no event type')
    assert messages[5] == 'duplicate entry "message.sent"'
    assert messages[7].startswith('unknown event type "mesage.sent"')


# Matching --------------------------------------------------------------------------------------


def test_patterns_matching_examples() -> None:
    assert Catalog.patterns_matching("call.recording.paused") == [
        "*",
        "call.recording.paused",
        "call.*",
        "call.recording.*",
    ]
    assert Catalog.patterns_matching("message.sent") == ["*", "message.sent", "message.*"]
    assert Catalog.patterns_matching("CALL_RECEIVED") == ["*", "CALL_RECEIVED"]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "message.sent", True),
        ("message.sent", "message.sent", True),
        ("message.sent", "message.sent_x", False),
        ("message.*", "message.sent", True),
        ("message.*", "message", False),
        ("message.*", "messages.sent", False),
        ("mess.*", "message.sent", False),
        ("call.*", "call.recording.paused", True),
        ("call.recording.*", "call.recording.paused", True),
        ("call.recording.*", "call.recording", False),
        ("call.recording.paused.*", "call.recording.paused", False),
        ("call.rec.*", "call.recording.paused", False),
        ("call", "call.completed", False),
    ],
)
def test_pattern_matches(pattern: str, event_type: str, expected: bool) -> None:
    assert Catalog.pattern_matches(pattern, event_type) is expected
    assert (pattern in Catalog.patterns_matching(event_type)) is expected


def test_matching_agrees_over_default_catalog(catalog: Catalog) -> None:
    names = [t.name for t in catalog.list()]
    wildcards = sorted({p + ".*" for n in names for p in _prefixes(n)})
    near_misses = ["cal.*", "call", "call.recording", "whatsapp.template", "message.sent.*", ""]
    patterns = ["*", *names, *wildcards, *near_misses]
    assert catalog.subscription_errors(["*", *names, *wildcards]) == []
    for event_type in names:
        matching = Catalog.patterns_matching(event_type)
        assert len(matching) == len(set(matching))
        assert catalog.subscription_errors(matching) == []
        for pattern in patterns:
            assert Catalog.pattern_matches(pattern, event_type) == (pattern in matching), (
                pattern,
                event_type,
            )
    # Each valid wildcard covers exactly the types whose names start with its prefix.
    for wildcard in wildcards:
        covered = [n for n in names if Catalog.pattern_matches(wildcard, n)]
        assert covered
        assert covered == [n for n in names if n.startswith(wildcard[:-1])]


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


# Bad catalog files -----------------------------------------------------------------------------


def _valid_document() -> dict[str, Any]:
    return {
        "name": "test",
        "version": 1,
        "groups": [
            {"id": "a", "title": "A events", "description": "A."},
            {"id": "b", "title": "B events"},
        ],
        "event_types": [
            {"name": "a.one", "group": "a", "description": "One."},
            {"name": "a.two", "group": "a", "deprecated": True, "replaced_by": "b.three"},
            {"name": "b.three", "group": "b", "description": "", "deprecated": False},
        ],
    }


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_minimal_catalog_loads_with_defaults(tmp_path: Path) -> None:
    loaded = Catalog.load(_write(tmp_path, _valid_document()))
    assert loaded.name == "test"
    assert loaded.source == str(tmp_path / "catalog.json")
    assert loaded.groups()[1] == Group(id="b", title="B events", description="")
    assert loaded.get("a.one") == EventTypeInfo("a.one", "a", "One.", False, "")
    assert loaded.get("a.two") == EventTypeInfo("a.two", "a", "", True, "b.three")


def _mutate(path: str, value: object) -> dict[str, Any]:
    """A valid document with one change: "event_types.1.group" = value, or delete if value is ..."""
    document = _valid_document()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return document


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "top level: expected a JSON object"),
        (_mutate("name", ...), 'top level: missing key "name"'),
        (_mutate("name", ""), "catalog name is empty"),
        (_mutate("name", 3), 'top level: "name" must be a string'),
        (_mutate("version", 2), "unsupported version 2 (supported: 1)"),
        (_mutate("version", "1"), '"version" must be an integer'),
        (_mutate("version", True), '"version" must be an integer'),
        (_mutate("groups", {}), '"groups" must be a JSON array'),
        (_mutate("event_types", ...), 'top level: missing key "event_types"'),
        (_mutate("extra", 1), 'top level: unknown key "extra"'),
        (_mutate("groups.0", "a"), "groups[0]: expected a JSON object"),
        (_mutate("groups.1.id", "a"), 'groups[1]: duplicate group id "a"'),
        (_mutate("groups.1.id", ""), "groups[1]: empty group id"),
        (_mutate("groups.1.title", ...), 'groups[1]: missing key "title"'),
        (_mutate("groups.1.colour", "red"), 'groups[1]: unknown key "colour"'),
        (_mutate("event_types.0.name", "a.two"), 'event_types[1] ("a.two"): duplicate event'),
        (_mutate("event_types.0.name", "a..one"), 'event_types[0] ("a..one"): invalid event'),
        (_mutate("event_types.0.name", "a.*"), 'event_types[0] ("a.*"): invalid event'),
        (_mutate("event_types.0.name", "a.one-x"), 'event_types[0] ("a.one-x"): invalid'),
        (_mutate("event_types.0.name", ""), 'event_types[0] (""): invalid event type name'),
        (_mutate("event_types.0.name", "a.one\n"), "invalid event type name"),
        (_mutate("event_types.0.name", ...), 'event_types[0]: missing key "name"'),
        (_mutate("event_types.0.name", None), 'event_types[0]: "name" must be a string'),
        (_mutate("event_types.0.group", "c"), 'event_types[0] ("a.one"): unknown group "c"'),
        (_mutate("event_types.0.deprecate", True), 'event_types[0]: unknown key "deprecate"'),
        (_mutate("event_types.0.deprecated", "yes"), '"deprecated" must be true or false'),
        (_mutate("event_types.0.description", 1), '"description" must be a string'),
        (
            _mutate("event_types.1.replaced_by", "b.four"),
            'event_types[1] ("a.two"): replaced_by "b.four" is not in the catalog',
        ),
        (
            _mutate("event_types.1.replaced_by", "a.two"),
            'event_types[1] ("a.two"): replaced_by "a.two" is itself deprecated',
        ),
        (
            _mutate("event_types.1.deprecated", False),
            'event_types[1] ("a.two"): replaced_by is set but the type is not deprecated',
        ),
    ],
)
def test_bad_catalog_files(tmp_path: Path, document: object, problem: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(CatalogError) as excinfo:
        Catalog.load(path)
    assert str(excinfo.value).startswith(f"{path}: ")
    assert problem in str(excinfo.value)
    assert excinfo.value.source == str(path)
    assert isinstance(excinfo.value, ValueError)


def test_replaced_by_chain_to_deprecated_type(tmp_path: Path) -> None:
    document = _valid_document()
    document["event_types"].append(
        {"name": "b.four", "group": "b", "deprecated": True, "replaced_by": "a.two"}
    )
    with pytest.raises(CatalogError, match=r'replaced_by "a\.two" is itself deprecated'):
        Catalog.load(_write(tmp_path, document))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "invalid JSON at line 1 column 1"),
        ('{"name": "x",', "invalid JSON at line 1"),
        ('{"name": "x", "name": "y", "version": 1, "groups": [], "event_types": []}', "duplicate"),
    ],
)
def test_unparseable_files(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match="^" + str(path).replace("\\", "\\\\") + ": ") as exc:
        Catalog.load(path)
    assert problem in str(exc.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(CatalogError, match="cannot read file") as exc:
        Catalog.load(missing)
    assert exc.value.source == str(missing)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8"):
        Catalog.load(latin1)
    with pytest.raises(CatalogError, match="cannot read file"):
        Catalog.load(tmp_path)


def test_empty_catalog_is_valid_but_matches_nothing(tmp_path: Path) -> None:
    empty = Catalog.load(
        _write(tmp_path, {"name": "empty", "version": 1, "groups": [], "event_types": []})
    )
    assert len(empty) == 0
    assert empty.subscription_errors(["*"]) == []
    assert empty.subscription_errors(["a.*", "a"]) == [
        (0, 'wildcard "a.*" matches no event type'),
        (1, 'unknown event type "a"'),
    ]
