"""The documented vocabulary: separate SDTM and ADaM registries, the generated reference page and JSON Schema
(current, and every bundled spec valid against the schema). The shape of the packages (layers, cycles, private
names, module sizes) is tests/test_architecture.py's.

Data: the bundled mappings/ of this repository.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from converter.errors import SpecError
from converter.spec.adam_rules import ADAM_RULES
from converter.spec.loader import parse_spec
from converter.spec.reference import render_reference, render_schema, spec_schema, write_reference
from converter.spec.rules import SDTM_RULES, SHARED

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MAPPINGS = ROOT / "mappings"


# --- registries ---------------------------------------------------------------------------------------------
def test_importing_the_adam_rules_does_not_grow_the_sdtm_vocabulary() -> None:
    code = (
        "from converter.spec.rules import SDTM_RULES; before = sorted(SDTM_RULES); "
        "import converter.adam.algorithms, converter.adam.pipeline; print(before == sorted(SDTM_RULES))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
    assert not set(SDTM_RULES) & (set(ADAM_RULES) - set(SHARED))
    assert all(ADAM_RULES[n] is SDTM_RULES[n] for n in SHARED)


def _doc(standard: str, rule: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": "XX", "label": "T", "standard": standard, "sources": [{"id": "S", "dataset": "DM"}],
            "variables": [{"name": "A", "label": "A", "type": "text", "rule": rule}]}  # fmt: skip


def test_a_rule_of_the_other_standard_is_unknown() -> None:
    import converter.adam.algorithms  # noqa: F401 - the ADaM implementations registered: still refused in SDTM

    with pytest.raises(SpecError, match=r"x.yaml.*variable A: unknown rule 'merge'"):
        parse_spec(_doc("SDTMIG 3.4", {"merge": {"dataset": "EX", "var": "EXSEQ"}}), Path("x.yaml"))
    with pytest.raises(SpecError, match="unknown rule 'ct'"):
        parse_spec(_doc("ADaMIG 1.3", {"ct": {"field": "SEX", "codelist": "SEX"}}), Path("x.yaml"))
    assert parse_spec(_doc("ADaMIG 1.3", {"merge": {"dataset": "EX", "var": "EXSEQ"}}), Path("x.yaml"))
    assert parse_spec(_doc("ADaMIG 1.3", {"field": "AGE"}), Path("x.yaml"))


def test_every_rule_of_both_vocabularies_is_implemented_and_documented() -> None:
    import converter.adam.algorithms  # noqa: F401 - registers the ADaM implementations
    from converter.sdtm.context import DATASET, ROW

    for rules in (SDTM_RULES, ADAM_RULES):
        for name, r in rules.items():
            assert (ROW if r.phase == "row" else DATASET).get(name) is not None, name
            assert r.doc and r.args, name


# --- generated reference page and schema ---------------------------------------------------------------------
def test_committed_reference_page_and_schema_are_current() -> None:
    assert (DOCS / "spec-reference.md").read_text(encoding="utf-8") == render_reference(), (
        "docs/spec-reference.md is stale: python -m converter.spec.reference"
    )
    assert (DOCS / "spec.schema.json").read_text(encoding="utf-8") == render_schema(), (
        "docs/spec.schema.json is stale: python -m converter.spec.reference"
    )


def test_reference_lists_every_rule_and_construct(tmp_path: Path) -> None:
    from converter.spec.expr import CONSTRUCTS

    page = render_reference()
    for name in {*SDTM_RULES, *ADAM_RULES}:
        assert f"| `{name}` |" in page, name
    for construct, example, _ in CONSTRUCTS:
        assert f"| {construct} | `{example}` |" in page
    written = write_reference(tmp_path / "docs")
    assert sorted(p.name for p in written) == ["spec-reference.md", "spec.schema.json"]


VALIDATOR = Draft202012Validator(spec_schema())


def test_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(json.loads(render_schema()))


@pytest.mark.parametrize("path", sorted(MAPPINGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(MAPPINGS)))
def test_every_bundled_spec_validates_against_the_schema(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []


def _broken(path: str, change: Any) -> list[str]:
    doc = yaml.safe_load((MAPPINGS / path).read_text(encoding="utf-8"))
    change(doc)
    return [e.message for e in VALIDATOR.iter_errors(copy.deepcopy(doc))]


def test_schema_refuses_what_the_loader_refuses() -> None:
    def sdtm_with_adam_rule(d: dict[str, Any]) -> None:
        d["variables"][0]["rule"] = {"merge": {"dataset": "EX", "var": "EXSEQ"}}

    def adam_with_bad_enum(d: dict[str, Any]) -> None:
        d["variables"][0]["rule"] = {"merge": {"dataset": "EX", "var": "EXSEQ", "mode": "latest"}}

    def hostile_where(d: dict[str, Any]) -> None:
        d["sources"][0]["where"] = "@pd.io.common.os.system('x') == 0"

    def unknown_key(d: dict[str, Any]) -> None:
        d["variables"][0]["lenght"] = 3

    def bad_type(d: dict[str, Any]) -> None:
        d["variables"][0]["type"] = "string"

    assert _broken("sdtm/dm.yaml", sdtm_with_adam_rule)
    assert _broken("adam/adsl.yaml", adam_with_bad_enum)
    assert _broken("sdtm/ds.yaml", hostile_where)
    assert _broken("sdtm/dm.yaml", unknown_key)
    assert _broken("sdtm/ae.yaml", bad_type)
    assert not _broken("adam/adsl.yaml", lambda d: None)
