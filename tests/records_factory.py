"""Valid CRF record sets for tests, built by hand (no simulator needed).

``small_records()``: three subjects covering every form, with partial dates, missing optional values,
non-ASCII names and text that needs escaping/quoting. ``bulk_records(n)``: ``n`` subjects of ~50 records each
(one template subject replicated, vectorised) for round trips at scale and speed measurements.
``raw_frames(records)``: the same records as all-string frames, for hand-editing bad inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from converter.records.checks import field_strings
from converter.records.model import Records, normalise_all
from converter.records.schema import FormSchema, load_forms


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def small_records(schema: FormSchema | None = None) -> Records:
    """Three subjects: 1001 (transplant, relapse, alive), 1002 (died), 1003 (withdrew, lost to follow-up)."""
    schema = schema or load_forms()
    r: dict[str, pd.DataFrame] = {
        "ENROL": _frame(
            [
                {"SUBJID": "1001", "SITEID": "MDA", "CONSDT": "2012-01-02", "ENRLDT": "2012-01-05",
                 "INVNAM": "Jabbour, Elias"},
                {"SUBJID": "1002", "SITEID": "MDA", "CONSDT": "2012-02-01", "ENRLDT": "2012-02-01",
                 "INVNAM": "Kantarjian & O'Brien"},
                {"SUBJID": "1003", "SITEID": "MDA2", "CONSDT": "2012-03-01", "ENRLDT": "2012-03-04",
                 "INVNAM": "Østergård-Müller “Zoë” 王"},
            ]
        ),
        "DEMOG": _frame(
            [
                {"SUBJID": "1001", "BRTHDT": "1970", "AGE": 41, "SEX": "F", "RACE": "WHITE",
                 "ETHNIC": "NOT HISPANIC OR LATINO", "COUNTRY": "USA"},
                {"SUBJID": "1002", "BRTHDT": "1950-03", "AGE": 61, "SEX": "M", "RACE": "ASIAN",
                 "ETHNIC": "UNKNOWN", "COUNTRY": "USA"},
                {"SUBJID": "1003", "BRTHDT": None, "AGE": 18, "SEX": "M", "RACE": None, "ETHNIC": None,
                 "COUNTRY": "MEX"},
            ]
        ),
        "DIAG": _frame(
            [
                {"SUBJID": "1001", "DIAGDT": "2010-05", "SALVLN": "1", "PHSTAT": "NEGATIVE", "CYTOGEN": "DIPLOID",
                 "BMBLAST": 65.0, "CD22PCT": 95.0, "WBC": 3.2, "NPRIOR": 1, "PRSCT": "N", "PRBLIN": "N"},
                {"SUBJID": "1002", "DIAGDT": "2011-01-10", "SALVLN": "3+", "PHSTAT": "POSITIVE",
                 "CYTOGEN": "T(9;22)", "BMBLAST": 80.5, "CD22PCT": 88.0, "WBC": None, "NPRIOR": 3,
                 "PRSCT": "Y", "PRBLIN": "Y"},
                {"SUBJID": "1003", "DIAGDT": "2009", "SALVLN": "2", "PHSTAT": "NEGATIVE", "CYTOGEN": "KMT2A",
                 "BMBLAST": 0.1, "CD22PCT": 100.0, "WBC": 1e-05, "NPRIOR": 2, "PRSCT": "N",
                 "PRBLIN": None},
            ]
        ),
        "PRIORTX": _frame(
            [
                {"SUBJID": "1001", "PTSPID": 1, "PTTRT": "HYPER-CVAD", "PTSTDT": "2010-06", "PTENDT": "2011-03"},
                {"SUBJID": "1002", "PTSPID": 1, "PTTRT": "HYPER-CVAD", "PTSTDT": None, "PTENDT": None},
                {"SUBJID": "1002", "PTSPID": 2, "PTTRT": '"BLINA" <2 cycles>\tthen POMP', "PTSTDT": "2011",
                 "PTENDT": "2011-12-31"},
                {"SUBJID": "1002", "PTSPID": 3, "PTTRT": "BLINATUMOMAB", "PTSTDT": None, "PTENDT": None},
                {"SUBJID": "1003", "PTSPID": 1, "PTTRT": "AUGMENTED BFM", "PTSTDT": "2009", "PTENDT": None},
                {"SUBJID": "1003", "PTSPID": 2, "PTTRT": "FLAG-IDA", "PTSTDT": None, "PTENDT": None},
            ]
        ),
        "EXPOS": _frame(
            [
                {"SUBJID": "1001", "COURSE": 1, "DRUG": "INOTUZUMAB OZOGAMICIN", "DAY": 3, "ADMDT": "2012-01-09",
                 "DOSE": 1.3, "DOSEU": "mg/m2", "FREQ": "ONCE", "ROUTE": "INTRAVENOUS"},
                {"SUBJID": "1001", "COURSE": 1, "DRUG": "CYCLOPHOSPHAMIDE", "DAY": 1, "ADMDT": "2012-01-07",
                 "DOSE": 150.0, "DOSEU": "mg/m2", "FREQ": "Q12H", "ROUTE": "INTRAVENOUS"},
                {"SUBJID": "1001", "COURSE": 2, "DRUG": "INOTUZUMAB OZOGAMICIN", "DAY": 3, "ADMDT": "2012-02-06",
                 "DOSE": 0.9, "DOSEU": "mg/m2", "FREQ": "ONCE", "ROUTE": "INTRAVENOUS"},
                {"SUBJID": "1002", "COURSE": 1, "DRUG": "INOTUZUMAB OZOGAMICIN", "DAY": 3, "ADMDT": "2012-02-07",
                 "DOSE": 1.3, "DOSEU": "mg/m2", "FREQ": "ONCE", "ROUTE": "INTRAVENOUS"},
                {"SUBJID": "1002", "COURSE": 1, "DRUG": "METHOTREXATE", "DAY": 2, "ADMDT": "2012-02-06",
                 "DOSE": 12.0, "DOSEU": "mg", "FREQ": "ONCE", "ROUTE": "INTRATHECAL"},
                {"SUBJID": "1003", "COURSE": 1, "DRUG": "DEXAMETHASONE", "DAY": 1, "ADMDT": "2012-03-05",
                 "DOSE": 20.0, "DOSEU": "mg", "FREQ": "ONCE", "ROUTE": "ORAL"},
            ]
        ),
        "RESP": _frame(
            [
                {"SUBJID": "1001", "ASMDT": "2012-02-01", "COURSE": 1, "RESP": "CRi", "BMBLAST": 1.0,
                 "MRDRES": "NEGATIVE", "MRDLVL": None},
                {"SUBJID": "1001", "ASMDT": "2012-03-01", "COURSE": 2, "RESP": "CR", "BMBLAST": 0.0,
                 "MRDRES": "NEGATIVE", "MRDLVL": 0.0},
                {"SUBJID": "1002", "ASMDT": "2012-03-01", "COURSE": 1, "RESP": "NR", "BMBLAST": 50.0,
                 "MRDRES": "POSITIVE", "MRDLVL": 2.5},
            ]
        ),
        "AE": _frame(
            [
                {"SUBJID": "1001", "AESPID": 1, "AETERM": "low platelets", "AEPT": "Thrombocytopenia",
                 "AESOC": "Blood and lymphatic system disorders", "AESTDT": "2012-01-15", "AEENDT": "2012-02-10",
                 "AEGRADE": 4, "AESER": "N", "AEREL": "RELATED", "AEOUT": "RECOVERED/RESOLVED", "AEVOD": "N"},
                {"SUBJID": "1001", "AESPID": 2, "AETERM": "VOD, mild", "AEPT": "Venoocclusive liver disease",
                 "AESOC": "Hepatobiliary disorders", "AESTDT": "2012-02", "AEENDT": "2012-02-20", "AEGRADE": 3,
                 "AESER": "Y", "AEREL": "POSSIBLY RELATED", "AEOUT": "RECOVERED/RESOLVED WITH SEQUELAE",
                 "AEVOD": "Y", "AESHOSP": "Y", "AESLIFE": "N", "AESDTH": "N"},
                {"SUBJID": "1002", "AESPID": 1, "AETERM": "sepsis", "AEPT": "Sepsis", "AESOC": "Infections",
                 "AESTDT": "2012-04-28", "AEENDT": "2012-05-01", "AEGRADE": 5, "AESER": "Y", "AEREL": "NOT RELATED",
                 "AEOUT": "FATAL", "AEVOD": "N", "AESHOSP": "Y", "AESLIFE": "Y", "AESDTH": "Y"},
                {"SUBJID": "1003", "AESPID": 1, "AETERM": "nausea", "AEPT": "Nausea",
                 "AESOC": "Gastrointestinal disorders", "AESTDT": "2012", "AEENDT": None, "AEGRADE": 1,
                 "AESER": "N", "AEREL": "RELATED", "AEOUT": "UNKNOWN", "AEVOD": "N"},
            ]
        ),
        "LAB": _frame(
            [
                {"SUBJID": "1001", "LBDT": "2012-01-04", "LBTEST": "PLAT", "LBVAL": 150.0, "LBUNIT": "10^9/L"},
                {"SUBJID": "1001", "LBDT": "2012-01-15", "LBTEST": "PLAT", "LBVAL": 20.0, "LBUNIT": "10^9/L"},
                {"SUBJID": "1001", "LBDT": "2012-01-15", "LBTEST": "BILI", "LBVAL": 0.7, "LBUNIT": "mg/dL"},
                {"SUBJID": "1002", "LBDT": "2012-02-01", "LBTEST": "HGB", "LBVAL": 9.25, "LBUNIT": "g/dL"},
            ]
        ),
        "SCT": _frame([{"SUBJID": "1001", "SCTDT": "2012-04-01", "DONOR": "MATCHED RELATED"}]),
        "RELAPSE": _frame([{"SUBJID": "1001", "RELDT": "2013-01-01", "RELSITE": None}]),
        "EOT": _frame(
            [
                {"SUBJID": "1001", "EOTDT": "2012-03-20", "NCOURSE": 2, "EOTRSN": "TRANSPLANT"},
                {"SUBJID": "1002", "EOTDT": "2012-03-05", "NCOURSE": 1, "EOTRSN": "NO RESPONSE"},
                {"SUBJID": "1003", "EOTDT": "2012-03-10", "NCOURSE": 1, "EOTRSN": "WITHDRAWAL BY SUBJECT"},
            ]
        ),
        "FU": _frame(
            [
                {"SUBJID": "1001", "LSTALVDT": "2014-01-01", "FUSTAT": "ALIVE"},
                {"SUBJID": "1002", "LSTALVDT": "2012-05-01", "FUSTAT": "DEAD"},
                {"SUBJID": "1003", "LSTALVDT": "2012-06-30", "FUSTAT": "LOST TO FOLLOW-UP"},
            ]
        ),
        "DEATH": _frame([{"SUBJID": "1002", "DTHDT": "2012-05-01", "DTHCAUS": "INFECTION"}]),
    }  # fmt: skip
    return normalise_all(r, schema)


def _template(schema: FormSchema) -> Records:
    """One subject with ~50 records: 28 doses, 8 labs, 5 AEs, 3 responses and one of each single form."""
    base = small_records(schema)
    one = {oid: f[f["SUBJID"] == "1001"].reset_index(drop=True) for oid, f in base.items()}
    drugs = list(schema.forms["EXPOS"].fields["DRUG"].codes)
    expos = [
        {"SUBJID": "1001", "COURSE": c, "DRUG": drugs[d], "DAY": day, "ADMDT": f"2012-0{c + 1}-{day + 4:02d}",
         "DOSE": 0.5 + d + day / 10, "DOSEU": "mg/m2", "FREQ": "ONCE", "ROUTE": "INTRAVENOUS"}
        for c in (1, 2) for d in range(7) for day in (1, 3)
    ]  # fmt: skip
    labs = [
        {"SUBJID": "1001", "LBDT": f"2012-01-{4 + k:02d}", "LBTEST": t, "LBVAL": 10.5 * (k + 1),
         "LBUNIT": "10^9/L"}
        for k in range(4) for t in ("PLAT", "NEUT")
    ]  # fmt: skip
    ae = pd.concat([one["AE"]] * 3, ignore_index=True).head(5).copy()
    ae["AESPID"] = range(1, 6)
    resp = pd.concat([one["RESP"], one["RESP"].head(1)], ignore_index=True)
    resp.loc[2, "ASMDT"] = "2012-04-15"
    one.update(EXPOS=pd.DataFrame(expos), LAB=pd.DataFrame(labs), AE=ae, RESP=resp)
    return normalise_all(one, schema)


def bulk_records(n: int, schema: FormSchema | None = None) -> Records:
    """``n`` subjects (``S0000001``...) of ~50 records each, all valid; vectorised, so cheap at 100,000."""
    schema = schema or load_forms()
    tmpl = _template(schema)
    ids = np.array([f"S{k:07d}" for k in range(1, n + 1)], dtype=object)
    out: dict[str, pd.DataFrame] = {}
    for oid, frame in tmpl.items():
        m = len(frame)
        if m == 0:
            out[oid] = frame
            continue
        big = frame.iloc[np.tile(np.arange(m), n)].reset_index(drop=True)
        big["SUBJID"] = np.repeat(ids, m)
        out[oid] = big
    return out


def raw_frames(records: Records, schema: FormSchema | None = None) -> dict[str, pd.DataFrame]:
    """The records as all-string frames ("" = missing), as a CSV file would hold them."""
    schema = schema or load_forms()
    out: dict[str, pd.DataFrame] = {}
    for oid, form in schema.forms.items():
        frame = records[oid]
        out[oid] = pd.DataFrame(
            {name: pd.Series(field_strings(frame[name], f), dtype=object).fillna("") for name, f in form.fields.items()}
        )
    return out
