"""One-off: turn the Orbit "Webhook Events" page (a text seed) into the default catalog JSON.

Kept so the extraction is reproducible:

    python tools/extract_catalog.py /work/shared/seeds/000_d1c56d3adea0dfae.txt \
        service/catalog_data/default.json

The page lists groups as

    <Heading>            e.g. "Number / Porting Events"
    <blank>
    <one-line group description>
    EventDescription     (table header)
    <name><Description>  one row per event type, name and description glued together
    <blank>

Event names are lowercase dotted identifiers ([a-z0-9_.]+) and every description in the seed
starts with a character outside that set (checked by hand, and asserted below), so the name is
the longest leading run of [a-z0-9_.]. Rows whose description reads "Use X instead Deprecated."
become deprecated, replaced_by the type whose name spells X
(BALANCE_TOPPED_UP -> balance.topped_up).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TABLE_HEADER = "EventDescription"
ROW = re.compile(r"^(?P<name>[a-z0-9_.]+)(?P<description>[^a-z0-9_.\s].*)$")
DEPRECATED = re.compile(r"^Use (?P<constant>[A-Z0-9_]+) instead\b.*\bDeprecated\.?$")
EXPECTED_COUNT = 176


def slug(heading: str) -> str:
    """Group id from a heading: "Number Masking (Proxy) Events" -> "number_masking"."""
    text = re.sub(r"\([^)]*\)", " ", heading)
    text = re.sub(r"\s+Events\s*$", "", text.strip())
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def extract(lines: list[str]) -> dict[str, Any]:
    groups: list[dict[str, str]] = []
    event_types: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if line.strip() != TABLE_HEADER:
            continue
        title = lines[index - 3].strip()
        if lines[index - 2].strip() != "" or not title:
            raise SystemExit(f"line {index + 1}: unexpected layout above the table header")
        group_id = slug(title)
        groups.append({"id": group_id, "title": title, "description": lines[index - 1].strip()})
        for row in lines[index + 1 :]:
            if not row.strip():
                break
            match = ROW.match(row.strip())
            if match is None:
                raise SystemExit(f"cannot split row {row!r}")
            event_types.append(
                {
                    "name": match["name"],
                    "group": group_id,
                    "description": match["description"].strip(),
                    "deprecated": False,
                    "replaced_by": "",
                }
            )

    by_constant = {t["name"].upper().replace(".", "_"): t["name"] for t in event_types}
    for event_type in event_types:
        deprecated = DEPRECATED.match(event_type["description"])
        if deprecated is not None:
            event_type["deprecated"] = True
            event_type["replaced_by"] = by_constant[deprecated["constant"]]

    names = [t["name"] for t in event_types]
    if len(names) != EXPECTED_COUNT or len(set(names)) != EXPECTED_COUNT:
        raise SystemExit(f"expected {EXPECTED_COUNT} unique event types, got {len(names)}")
    return {"name": "orbit", "version": 1, "groups": groups, "event_types": event_types}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    catalog = extract(args.seed.read_text(encoding="utf-8").splitlines())
    text = json.dumps(catalog, indent=2, ensure_ascii=False) + "\n"
    args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(
        f"{len(catalog['event_types'])} event types in {len(catalog['groups'])} groups"
        f" -> {args.output}\n"
    )


if __name__ == "__main__":
    main()
