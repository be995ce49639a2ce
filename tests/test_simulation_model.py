"""The simulator's clinical model is data (mappings/records/simulation.yaml): its MedDRA SOCs are real SOC names,
a bad model is refused before anything is drawn, and the engine under converter/records names no trial."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from converter.errors import SpecError
from converter.records.schema import load_forms
from converter.records.simulate import check_model, load_parameters, simulate
from converter.records.simulation.model import meddra_socs

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"


def test_meddra_soc_file_lists_the_27_socs_with_their_codes() -> None:
    socs = meddra_socs()
    assert len(socs) == 27 and len(set(socs.values())) == 27
    assert all(re.fullmatch(r"100\d{5}", str(code)) for code in socs.values())
    # anchors (MedDRA SOC codes)
    assert socs["Respiratory, thoracic and mediastinal disorders"] == 10038738
    assert socs["Infections and infestations"] == 10021881
    assert socs["Blood and lymphatic system disorders"] == 10005329
    assert socs["Product issues"] == 10077536


def test_every_soc_of_the_model_is_a_meddra_soc() -> None:
    P = load_parameters()
    socs = set(meddra_socs())
    used = {t["soc"] for t in P["terms"].values()} | {t["soc"] for t in P["toxicity"].values() if "soc" in t}
    assert used <= socs, used - socs
    assert all(set(spec) == {"soc", "verbatim", "rel", "serious"} for spec in P["terms"].values())


def test_the_cohort_carries_full_soc_names() -> None:
    ae = simulate()["AE"]
    assert set(ae["AESOC"]) <= set(meddra_socs())
    fatal_1048 = ae[(ae["SUBJID"] == "1048") & (ae["AEGRADE"] == 5)]
    assert fatal_1048["AESOC"].tolist() == ["Respiratory, thoracic and mediastinal disorders"]


def _model_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (MAPPINGS / "records" / "simulation.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "simulation.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def _mappings_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> Path:
    """A copy of the project's mappings whose simulation model has ``old`` (once) replaced by ``new``, in force
    through INOCONV_MAPPINGS; the model's path."""
    other = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, other)
    model = other / "records" / "simulation.yaml"
    text = model.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    model.write_text(text.replace(old, new), encoding="utf-8")
    monkeypatch.setenv("INOCONV_MAPPINGS", str(other))
    return model


def test_a_soc_cut_at_its_comma_is_refused(tmp_path: Path) -> None:
    """The issue-16 pitfall: an unquoted comma in a YAML flow mapping ends the value."""
    path = _model_with(
        tmp_path,
        'soc: "Respiratory, thoracic and mediastinal disorders"',
        "soc: Respiratory, thoracic and mediastinal disorders",
    )
    with pytest.raises(SpecError) as err:
        check_model(load_parameters(path), load_forms(), path)
    text = "\n".join(err.value.messages)
    assert f"{path} terms.Respiratory failure: soc 'Respiratory' is not a MedDRA SOC name" in text
    assert "unknown keys ['thoracic and mediastinal disorders']" in text


def test_an_invented_soc_is_refused(tmp_path: Path) -> None:
    path = _model_with(tmp_path, "Cardiac arrest: {soc: Cardiac disorders,", "Cardiac arrest: {soc: Heart disorders,")
    with pytest.raises(SpecError, match=r"terms\.Cardiac arrest: soc 'Heart disorders' is not a MedDRA SOC name"):
        check_model(load_parameters(path), load_forms())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    kind: after-transplant\n", "    kind: after-sct\n", "exactly one toxicity of kind after-transplant"),
        ("flag: AEVOD", "flag: AEFLAG", "records.adverse_events.flag: 'AEFLAG' is not a field of AE"),
        (
            "  codes: [CR, CRp, CRi, MCR, PR, NR, PD]",
            "  codes: [CR, CRp, CRi, MCR, PR, NR, PD, SD]",
            "response.codes: ['SD'] not codes of RESP.RESP",
        ),
        ("    relapse: PROGRESSIVE DISEASE\n", "    relapse: RELAPSE\n", "['RELAPSE'] not codes of EOT.EOTRSN"),
        ("study_drug: INOTUZUMAB OZOGAMICIN", "study_drug: ASPIRIN", "treatment.study_drug: 'ASPIRIN' is not a drug"),
    ],
)
def test_a_model_that_does_not_fit_the_forms_is_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        check_model(load_parameters(_model_with(tmp_path, old, new)), load_forms())
    assert expected in "\n".join(err.value.messages)


def test_the_model_drives_the_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Codes and roles come from the model: no flagged terms in the model, no flagged events in the records."""
    path = _mappings_with(tmp_path, monkeypatch, "  flag_terms: [Venoocclusive liver disease]", "  flag_terms: []")
    ae = simulate(40, seed=2, schema=load_forms(path.parent / "forms.yaml"))["AE"]
    assert set(ae["AEVOD"]) == {"N"}
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["calibration"]["default_seed"] == 1371630


def test_the_engine_names_no_trial() -> None:
    words = re.compile(r"nct01371630|inotuzumab|vod|gvhd|salvage|hyper-cvd|blinatumomab", re.IGNORECASE)
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted((ROOT / "converter" / "records").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if words.search(line)
    ]
    assert hits == []


def test_inoconv_simulate_refuses_a_bad_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2 with every problem, the model file named, nothing written, no traceback."""
    from typer.testing import CliRunner

    from converter.cli import app

    model = _mappings_with(
        tmp_path, monkeypatch, "Cardiac arrest: {soc: Cardiac disorders,", "Cardiac arrest: {soc: Heart,"
    )
    out = tmp_path / "cohort"
    res = CliRunner().invoke(app, ["simulate", "--n", "5", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"{model} terms.Cardiac arrest: soc 'Heart' is not a MedDRA SOC name" in res.output
    assert "Traceback" not in res.output and not out.exists()


@pytest.mark.parametrize(
    ("old", "new", "place"),
    [
        ("\ntransplant:\n", "\ntrans_plant:\n", "transplant"),  # a section renamed (one flipped bit made 'tranSplant')
        ("\n  donor:", "\n  donors:", "transplant.donor"),  # a key inside a section
    ],
)
def test_a_section_the_simulator_reads_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, place: str
) -> None:
    """Exit 2 naming the file and the missing key's dotted place (was an internal KeyError, exit 3)."""
    from typer.testing import CliRunner

    from converter.cli import app

    model = _mappings_with(tmp_path, monkeypatch, old, new)
    out = tmp_path / "cohort"
    res = CliRunner().invoke(app, ["simulate", "--n", "3", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"{model}: {place}: missing" in res.output
    assert "Traceback" not in res.output and not out.exists()
