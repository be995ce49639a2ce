"""SDTM content rules (converter/validate/sdtm_content.py, converter/validate/meddra.py): each class of defect
planted in a copy of the bundled example's SDTM package makes its rule fire; the example itself has none."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from converter.records.sources import read_records
from converter.validate.findings import Finding
from converter.validate.meddra import MeddraDictionary
from converter.validate.sdtm_content import meddra_socs, run_content_rules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "nct01371630" / "odm" / "nct01371630.xml"
MEDDRA = ROOT / "tests" / "fixtures" / "meddra"
CONTENT_RULES = {
    "CORE-000264", "CORE-000266", "INO-SDTM-056", "INO-SDTM-050", "INO-SDTM-051", "INO-SDTM-052", "INO-SDTM-053",
    "INO-SDTM-054", "CORE-000026", "CORE-000685", "INO-SDTM-057", "CORE-000774", "INO-SDTM-058", "INO-SDTM-060",
    "INO-SDTM-061",
}  # fmt: skip
Frames = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def example() -> Frames:
    from converter.sdtm.pipeline import records_to_sdtm

    return dict(records_to_sdtm(read_records(EXAMPLE)).datasets)


def _copy(frames: Frames) -> Frames:
    return {k: v.copy(deep=True) for k, v in copy.copy(frames).items()}


def _fired(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule]


def test_the_example_has_none_of_these_defects(example: Frames) -> None:
    findings = run_content_rules(example, meddra_socs(), MEDDRA)
    assert not [f for f in findings if f.rule_id in CONTENT_RULES], [str(f) for f in findings][:10]


def test_the_example_carries_the_content(example: Frames) -> None:
    ae, ex, lb = example["AE"], example["EX"], example["LB"]
    assert ae["AESOC"].notna().all() and (ae["AESOC"] == ae["AEBODSYS"]).all()
    assert ae["AESOCCD"].notna().all() and ae["AEPTCD"].notna().any() and ae["AELLT"].notna().all()
    serious = ae["AESER"] == "Y"
    crit = ae[["AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"]].eq("Y").any(axis=1)
    assert serious.sum() > 100 and crit[serious].all() and not crit[~serious].any()
    assert ae["AEACN"].notna().all()
    assert ex["EXTPTNUM"].notna().all() and set(ex["EXDOSFRM"]) == {"INJECTION", "TABLET"}
    assert "BLAST" not in set(lb["LBTESTCD"]) and "BLASTCE" in set(lb["LBTESTCD"])
    assert lb.loc[lb["LBTESTCD"] == "BILI", "LBSPEC"].eq("SERUM").all()
    assert lb["VISITNUM"].notna().all() and example["RS"]["VISITNUM"].notna().all()
    nd = lb["LBSTAT"] == "NOT DONE"
    assert nd.sum() > 0 and lb.loc[nd, "LBREASND"].notna().all()
    assert set(lb.loc[lb["LBTESTCD"] == "PLAT", "LBNRIND"]) >= {"LOW", "NORMAL"}


def _first(df: pd.DataFrame, mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def aesoc_null(f: Frames) -> None:
    f["AE"].loc[0, "AESOC"] = None


def aesoc_dropped(f: Frames) -> None:
    f["AE"] = f["AE"].drop(columns=["AESOC"])


def soc_cut_at_comma(f: Frames) -> None:
    i = _first(f["AE"], f["AE"]["AESOC"] == "Respiratory, thoracic and mediastinal disorders")
    f["AE"].loc[i, ["AESOC", "AEBODSYS"]] = "Respiratory"


def soc_code_wrong(f: Frames) -> None:
    f["AE"].loc[0, ["AESOCCD", "AEBDSYCD"]] = 10005329 if f["AE"].loc[0, "AESOCCD"] != 10005329 else 10007541


def bodsys_not_soc(f: Frames) -> None:
    f["AE"].loc[1, "AEBODSYS"] = "Investigations" if f["AE"].loc[1, "AESOC"] != "Investigations" else "Eye disorders"


def code_not_8_digits(f: Frames) -> None:
    i = _first(f["AE"], f["AE"]["AEPTCD"].notna())
    f["AE"]["AEPTCD"] = f["AE"]["AEPTCD"].astype("Float64")
    f["AE"].loc[i, "AEPTCD"] = 1004355.0


def pt_two_codes(f: Frames) -> None:
    rows = np.flatnonzero((f["AE"]["AEDECOD"] == "Nausea").to_numpy())
    f["AE"].loc[rows[0], "AEPTCD"] = 10047700  # Vomiting's code on one Nausea row


def serious_without_criterion(f: Frames) -> None:
    i = _first(f["AE"], f["AE"]["AESER"] == "Y")
    f["AE"].loc[i, ["AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"]] = "N"


def nonserious_with_criterion(f: Frames) -> None:
    i = _first(f["AE"], f["AE"]["AESER"] == "N")
    f["AE"].loc[i, "AESHOSP"] = "Y"


def tptnum_dropped(f: Frames) -> None:
    f["EX"] = f["EX"].drop(columns=["EXTPTNUM"])


def tptnum_null(f: Frames) -> None:
    f["EX"].loc[3, "EXTPTNUM"] = pd.NA


def tptnum_not_one_to_one(f: Frames) -> None:
    i = _first(f["EX"], f["EX"]["EXTPT"] == "DAY 1")
    f["EX"].loc[i, "EXTPTNUM"] = 2


def reasnd_null(f: Frames) -> None:
    f["LB"].loc[f["LB"]["LBSTAT"] == "NOT DONE", "LBREASND"] = None


def reasnd_dropped(f: Frames) -> None:
    f["LB"] = f["LB"].drop(columns=["LBREASND"])


def reasnd_without_not_done(f: Frames) -> None:
    i = _first(f["LB"], f["LB"]["LBSTAT"].isna())
    f["LB"].loc[i, "LBREASND"] = "SAMPLE LOST"


def visitnum_null(f: Frames) -> None:
    f["RS"].loc[2, "VISITNUM"] = pd.NA


def visit_two_names(f: Frames) -> None:
    i = _first(f["LB"], f["LB"]["VISITNUM"] == 1)
    f["LB"].loc[i, "VISIT"] = "CYCLE 1"


CASES: list[tuple[Callable[[Frames], None], str, str, str]] = [
    (aesoc_null, "CORE-000264", "AE", "AESOC"),
    (aesoc_dropped, "CORE-000264", "AE", "AESOC"),
    (soc_cut_at_comma, "INO-SDTM-051", "AE", "AESOC"),
    (soc_code_wrong, "INO-SDTM-051", "AE", "AESOCCD"),
    (bodsys_not_soc, "INO-SDTM-052", "AE", "AEBODSYS"),
    (code_not_8_digits, "INO-SDTM-050", "AE", "AEPTCD"),
    (pt_two_codes, "INO-SDTM-053", "AE", "AEPTCD"),
    (serious_without_criterion, "CORE-000266", "AE", "AESER"),
    (nonserious_with_criterion, "INO-SDTM-056", "AE", "AESER"),
    (tptnum_dropped, "CORE-000026", "EX", "EXTPT"),
    (tptnum_null, "CORE-000685", "EX", "EXTPTNUM"),
    (tptnum_not_one_to_one, "INO-SDTM-057", "EX", "EXTPT"),
    (reasnd_null, "CORE-000774", "LB", "LBREASND"),
    (reasnd_dropped, "CORE-000774", "LB", "LBREASND"),
    (reasnd_without_not_done, "INO-SDTM-058", "LB", "LBREASND"),
    (visitnum_null, "INO-SDTM-060", "RS", "VISITNUM"),
    (visit_two_names, "INO-SDTM-061", "LB", "VISITNUM"),
]


@pytest.mark.parametrize(("plant", "rule", "dataset", "variable"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_planted_defect_fires_its_rule(
    example: Frames, plant: Callable[[Frames], None], rule: str, dataset: str, variable: str
) -> None:
    frames = _copy(example)
    plant(frames)
    fired = _fired(run_content_rules(frames, meddra_socs()), rule)
    assert fired, f"{rule} did not fire"
    assert {(f.dataset, f.variable) for f in fired} == {(dataset, variable)}
    others = {f.rule_id for f in run_content_rules(example, meddra_socs())} & CONTENT_RULES
    assert not others  # the untouched copy still has none


# --- against a MedDRA dictionary (MedDRA's ASCII format; tests/fixtures/meddra is a hand-made extract) -------------


def test_the_dictionary_reads_the_ascii_format() -> None:
    d = MeddraDictionary.read(MEDDRA)
    assert "NAUSEA" in set(d.pt.pt_name) and 10028813.0 in set(d.llt.llt_code)
    assert set(d.primary.soc_code.dropna()) <= set(float(c) for c in (meddra_socs() or {}).values())


@pytest.mark.parametrize(
    ("variable", "value", "expect"),
    [
        ("AEDECOD", "Vomiting", "is not the name of PT"),  # a PT code with another PT's name
        ("AELLTCD", 10099999, "is not a MedDRA LLT code"),
        ("AEDECOD", "Nausea and vomiting", "is not a MedDRA PT"),  # an uncoded row with a name not in MedDRA
    ],
)
def test_the_dictionary_catches_a_wrong_term_or_code(
    example: Frames, variable: str, value: object, expect: str
) -> None:
    frames = _copy(example)
    ae = frames["AE"]
    if variable == "AEDECOD" and value == "Vomiting":
        i = _first(ae, ae["AEDECOD"] == "Nausea")
    elif variable == "AELLTCD":
        i = _first(ae, ae["AELLTCD"].notna())
    else:
        i = _first(ae, ae["AEPTCD"].isna())
    ae.loc[i, variable] = value
    fired = _fired(run_content_rules(frames, meddra_socs(), MEDDRA), "INO-SDTM-054")
    assert [f for f in fired if f.variable == variable and expect in f.message and f.row == i + 1], fired


def test_validate_meddra_option_refuses_a_folder_without_the_files(tmp_path: Path) -> None:
    from converter.cli import app

    (tmp_path / "llt.asc").write_text("10028813$Nausea$10028813$\n")
    res = CliRunner().invoke(
        app, ["validate", str(ROOT / "tests" / "fixtures" / "pilot_sdtm"), "--meddra", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "pt.asc" in res.output and "Traceback" not in res.output


def test_validate_meddra_option_refuses_a_file_not_in_the_format(tmp_path: Path) -> None:
    from converter.cli import app

    for name in ("llt.asc", "pt.asc", "mdhier.asc"):
        (tmp_path / name).write_text((MEDDRA / name).read_text())
    (tmp_path / "pt.asc").write_text("Nausea,10028813\n")
    res = CliRunner().invoke(
        app, ["validate", str(ROOT / "tests" / "fixtures" / "pilot_sdtm"), "--meddra", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "pt.asc" in res.output and "line 1" in res.output


def test_the_meddra_fixture_is_what_its_documented_step_makes(tmp_path: Path) -> None:
    # tools/make_meddra_fixture.py remakes llt/pt/mdhier.asc from the simulation model's MedDRA coding: a code added
    # to mappings/records/simulation.yaml without remaking the fixture fails here
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_meddra_fixture", ROOT / "tools" / "make_meddra_fixture.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.write_fixture(ROOT, tmp_path)
    for name in ("llt.asc", "pt.asc", "mdhier.asc"):
        assert (tmp_path / name).read_bytes() == (MEDDRA / name).read_bytes(), name
