"""A MedDRA dictionary in MedDRA's own ASCII distribution format (``inoconv validate --meddra DIR``).

MedDRA is licensed: inoconv ships none. The user points at the ``MedAscii`` folder of their release; the files
read are ``$``-separated, one record a line, with a trailing ``$``:

* ``llt.asc``    llt_code$llt_name$pt_code$...$llt_currency$...
* ``pt.asc``     pt_code$pt_name$null_field$pt_soc_code$...
* ``mdhier.asc`` pt_code$hlt_code$hlgt_code$soc_code$pt_name$hlt_name$hlgt_name$soc_name$soc_abbrev$null_field$
  pt_soc_code$primary_soc_fg$   (one line per PT and path; primary_soc_fg Y marks the primary path)

The other files of the distribution (hlt.asc, hlt_pt.asc, hlgt.asc, hlgt_hlt.asc, soc.asc, soc_hlgt.asc) hold
nothing mdhier.asc does not, and are not needed. Terms compare case-insensitively (SDTM often upper-cases them).
An empty code field (a hand-made extract's unknown code; a release has none) is matched by name only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import InputError, problem
from converter.validate.common import numbers, row_findings, text_values
from converter.validate.findings import Finding

REQUIRED_FILES = {
    "llt.asc": ("llt_code", "llt_name", "pt_code"),
    "pt.asc": ("pt_code", "pt_name", "null_field", "pt_soc_code"),
    "mdhier.asc": (
        "pt_code", "hlt_code", "hlgt_code", "soc_code", "pt_name", "hlt_name", "hlgt_name", "soc_name",
        "soc_abbrev", "null_field", "pt_soc_code", "primary_soc_fg",
    ),
}  # fmt: skip


def _read_asc(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(
            problem(str(path), "", "", "", "meddra", "MedDRA ASCII file missing (give the MedAscii folder)")
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("$")
        if len(parts) < len(columns) or not (parts[0].isdigit() or parts[0] == ""):
            raise InputError(
                problem(str(path), f"line {i}", columns[0], line[:60], "meddra",
                        f"not a MedDRA ASCII record ({len(columns)} $-separated fields, a numeric code first)")
            )  # fmt: skip
        rows.append(parts[: len(columns)])
    return pd.DataFrame(rows, columns=list(columns), dtype=object)


def _codes(col: pd.Series) -> pd.Series:
    """MedDRA codes as floats (an empty field - a hand-made extract's unknown code - is NaN: not checked)."""
    return pd.to_numeric(col.str.strip(), errors="coerce").astype(float)


@dataclass(frozen=True)
class MeddraDictionary:
    llt: pd.DataFrame  # llt_code, llt_name (upper), pt_code (codes as floats, NaN where empty)
    pt: pd.DataFrame  # pt_code, pt_name
    primary: pd.DataFrame  # per PT its primary path: hlt/hlgt/soc codes and names

    @classmethod
    def read(cls, folder: Path) -> MeddraDictionary:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(problem(str(folder), "", "", "", "meddra", "is not a folder (the MedAscii folder)"))
        t = {name: _read_asc(folder / name, cols) for name, cols in REQUIRED_FILES.items()}
        llt = pd.DataFrame(
            {"llt_code": _codes(t["llt.asc"].llt_code), "llt_name": t["llt.asc"].llt_name.str.upper(),
             "pt_code": _codes(t["llt.asc"].pt_code)}
        )  # fmt: skip
        pt = pd.DataFrame({"pt_code": _codes(t["pt.asc"].pt_code), "pt_name": t["pt.asc"].pt_name.str.upper()})
        h = t["mdhier.asc"]
        h = h[h.primary_soc_fg.str.upper() == "Y"]
        primary = pd.DataFrame(
            {
                "pt_code": _codes(h.pt_code),
                **{f"{lv}_code": _codes(h[f"{lv}_code"]) for lv in ("hlt", "hlgt", "soc")},
                **{f"{lv}_name": h[f"{lv}_name"].str.upper().replace("", None) for lv in ("hlt", "hlgt", "soc")},
            }
        ).drop_duplicates(["pt_code", "soc_code"])
        return cls(llt.drop_duplicates(["llt_code", "llt_name"]), pt.drop_duplicates(["pt_code", "pt_name"]), primary)

    def check_ae(self, ae: pd.DataFrame) -> list[Finding]:
        """INO-SDTM-054: every LLT/PT code and name of AE as the dictionary has them, and the PT's primary path."""
        out: list[Finding] = []
        n = len(ae)

        def col_codes(var: str) -> np.ndarray:
            return numbers(ae[var]) if var in ae.columns else np.full(n, np.nan)

        def col_names(var: str) -> np.ndarray:
            if var not in ae.columns:
                return np.full(n, None, dtype=object)
            return np.asarray([None if v is None else str(v).upper() for v in text_values(ae[var])], dtype=object)

        def lookup(codes: np.ndarray, table: pd.DataFrame, key: str, field: str) -> np.ndarray:
            m = {k: v for k, v in zip(table[key].to_numpy(), table[field].to_numpy(), strict=True) if not pd.isna(v)}
            return np.asarray([m.get(float(c)) if not np.isnan(c) else None for c in codes], dtype=object)

        def report(var: str, bad: np.ndarray, msg: str, **vals: Any) -> None:
            out.extend(row_findings("INO-SDTM-054", "AE", var, ae, bad, msg, **vals))

        lltcd, ptcd = col_codes("AELLTCD"), col_codes("AEPTCD")
        llt_name = lookup(lltcd, self.llt, "llt_code", "llt_name")
        has = ~np.isnan(lltcd)
        report("AELLTCD", has & (llt_name == None), "AELLTCD {c:.0f} is not a MedDRA LLT code", c=lltcd)  # noqa: E711
        given = col_names("AELLT")
        bad = has & (llt_name != None) & (given != None) & (given != llt_name)  # noqa: E711
        report("AELLT", bad, "AELLT {g!r} is not the name of LLT {c:.0f} ({w!r})", g=given, c=lltcd, w=llt_name)
        llt_pt = np.asarray(
            [np.nan if v is None else v for v in lookup(lltcd, self.llt, "llt_code", "pt_code")], dtype=float
        )
        bad = has & ~np.isnan(llt_pt) & ~np.isnan(ptcd) & (llt_pt != ptcd)
        report("AEPTCD", bad, "AEPTCD {p:.0f} is not the PT of LLT {c:.0f} ({w:.0f})", p=ptcd, c=lltcd, w=llt_pt)
        pt_name = lookup(ptcd, self.pt, "pt_code", "pt_name")
        hasp = ~np.isnan(ptcd)
        report("AEPTCD", hasp & (pt_name == None), "AEPTCD {c:.0f} is not a MedDRA PT code", c=ptcd)  # noqa: E711
        dec = col_names("AEDECOD")
        bad = hasp & (pt_name != None) & (dec != pt_name)  # noqa: E711
        report("AEDECOD", bad, "AEDECOD {g!r} is not the name of PT {c:.0f} ({w!r})", g=dec, c=ptcd, w=pt_name)
        known_pt = set(self.pt.pt_name)
        bad = ~hasp & (dec != None) & ~np.isin(dec.astype(str), list(known_pt))  # noqa: E711
        report("AEDECOD", bad, "AEDECOD {g!r} is not a MedDRA PT", g=dec)
        for lv, name_var, code_var in (
            ("hlt", "AEHLT", "AEHLTCD"),
            ("hlgt", "AEHLGT", "AEHLGTCD"),
            ("soc", "AESOC", "AESOCCD"),
        ):
            want_code = np.asarray(
                [np.nan if v is None else v for v in lookup(ptcd, self.primary, "pt_code", f"{lv}_code")], dtype=float
            )
            want_name = lookup(ptcd, self.primary, "pt_code", f"{lv}_name")
            got_code, got_name = col_codes(code_var), col_names(name_var)
            bad = ~np.isnan(want_code) & ~np.isnan(got_code) & (got_code != want_code)
            what = f"the primary-path {lv.upper()} of PT"
            report(
                code_var,
                bad,
                f"{code_var} {{g:.0f}} is not {what} {{p:.0f}} ({{w:.0f}})",
                g=got_code,
                p=ptcd,
                w=want_code,
            )
            bad = (want_name != None) & (got_name != None) & (got_name != want_name)  # noqa: E711
            report(
                name_var, bad, f"{name_var} {{g!r}} is not {what} {{p:.0f}} ({{w!r}})", g=got_name, p=ptcd, w=want_name
            )
        return out
