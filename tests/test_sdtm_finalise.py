"""finalise's array helpers against the pandas operations they replace, on random columns and frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.frames import text_column
from converter.sdtm.build import cast_column, final_text, sort_order

TEXTS = ["", "A", "a", "B", "10", "2", "2024-01-01", "2024-01", "Ä", " "]


def _text_values(rng: np.random.Generator, n: int) -> np.ndarray:
    pool: list[object] = [*TEXTS, None, np.nan, pd.NA, pd.NaT]
    return np.array([pool[i] for i in rng.integers(0, len(pool), n)], dtype=object)


def _mixed_values(rng: np.random.Generator, n: int) -> np.ndarray:
    pool: list[object] = [*TEXTS, None, np.nan, 1, 2.5, 12.0, -0.0, True, np.int64(3)]
    return np.array([pool[i] for i in rng.integers(0, len(pool), n)], dtype=object)


def test_final_text_equals_text_column() -> None:
    rng = np.random.default_rng(1)
    for i in range(1500):
        n = int(rng.integers(0, 40))
        values = _text_values(rng, n) if i % 2 else _mixed_values(rng, n)
        col = pd.Series(values, dtype=object)
        expected = text_column(col).to_numpy()
        got = final_text(col)
        assert got.dtype == object
        assert [(type(v), v) for v in got] == [(type(v), v) for v in expected]


def test_integer_cast_equals_round_astype() -> None:
    rng = np.random.default_rng(2)
    for _ in range(500):
        n = int(rng.integers(0, 30))
        values = rng.choice([np.nan, 0.5, 1.5, 2.0, -3.7, 1e6, -0.0], n)
        col = pd.Series(values)
        pd.testing.assert_series_equal(cast_column(col, "integer"), col.round().astype("Int64"), check_exact=True)


def test_sort_order_equals_stable_sort_values() -> None:
    rng = np.random.default_rng(3)
    for _ in range(600):
        n = int(rng.integers(0, 40))
        k = int(rng.integers(1, 4))
        frame = pd.DataFrame(index=pd.RangeIndex(n))
        for j in range(k):
            kind = rng.integers(0, 3)
            if kind == 0:
                frame[f"k{j}"] = text_column(pd.Series(_text_values(rng, n), dtype=object))
            elif kind == 1:
                frame[f"k{j}"] = pd.Series(rng.choice([np.nan, 1.0, 2.0, -1.0, 0.0, -0.0], n), dtype="float64")
            else:
                frame[f"k{j}"] = cast_column(pd.Series(rng.choice([np.nan, 1.0, 2.0, -5.0], n)), "integer")
        keys = list(frame.columns)
        expected = frame.sort_values(keys, kind="mergesort", na_position="first").index.to_numpy()
        columns = [frame[c].to_numpy() if frame[c].dtype != "Int64" else frame[c].array for c in keys]
        assert sort_order(columns).tolist() == expected.tolist()


def test_seq_equals_sorted_frame_cumcount() -> None:
    from converter.sdtm import algorithms

    rng = np.random.default_rng(4)
    for i in range(200):
        n = int(rng.integers(1, 40))
        frame = pd.DataFrame({"USUBJID": rng.choice(["S-1", "S-2", "S-10", "S-3"], n)})
        frame["DTC"] = _text_values(rng, n)
        frame["SPID"] = rng.choice([np.nan, 1.0, 2.0, -0.0, 0.0], n) if i % 3 else _mixed_values(rng, n)
        frame["TRT"] = text_column(pd.Series(_text_values(rng, n), dtype=object))
        for by in (["USUBJID"], ["USUBJID", "TRT"]):
            sort_cols = [*by, *[c for c in ("DTC", "SPID", "TRT") if c not in by]]
            if any(algorithms._seq_sort_keys(frame[c]) is None for c in sort_cols):
                continue
            expected = algorithms._seq_sorted_frame(frame, by, sort_cols)
            if by == ["USUBJID", "TRT"] and frame["TRT"].isna().any():
                continue  # null by values take the sorted-frame path
            ctx = algorithms.DatasetContext(frame=frame, built={}, ct=None, spec=None, var=None)  # type: ignore[arg-type]
            got = algorithms.DATASET["seq"](ctx, {"by": by, "order": ["DTC", "SPID", "TRT"]})
            pd.testing.assert_series_equal(got, expected, check_exact=True, check_names=False)


def test_reference_equals_map_by_subject() -> None:
    from converter.sdtm import algorithms
    from converter.sdtm.context import full_dates

    rng = np.random.default_rng(5)
    subjects = ["S-1", "S-2", "S-3", "S-4", None]
    dates = ["2024-01-05", "2024-02", "2024-03-01T10:00", "", None, "2023-12-31"]
    for _ in range(200):
        n, m = int(rng.integers(0, 30)), int(rng.integers(0, 8))
        frame = pd.DataFrame({"USUBJID": np.array([subjects[i] for i in rng.integers(0, 5, n)], dtype=object)})
        dm = pd.DataFrame({"USUBJID": np.array([subjects[i] for i in rng.integers(0, 5, m)], dtype=object),
                           "RFSTDTC": np.array([dates[i] for i in rng.integers(0, 6, m)], dtype=object)})
        spec = type("Spec", (), {"name": "AE"})()
        ctx = algorithms.DatasetContext(frame=frame, built={"DM": dm}, ct=None, spec=spec, var=None)  # type: ignore[arg-type]
        refs = dm[["USUBJID", "RFSTDTC"]].drop_duplicates("USUBJID").set_index("USUBJID")["RFSTDTC"]
        expected = full_dates(frame["USUBJID"].map(refs))
        pd.testing.assert_series_equal(algorithms._reference(ctx, "DM.RFSTDTC"), expected, check_exact=True)


def test_group_extreme_equals_merge() -> None:
    from converter.sdtm import derivations

    rng = np.random.default_rng(6)
    dates = ["2024-01-05", "2024-02", "2024-03-01T10:00", "", None, "2023-12-31", "2024-01-05"]
    courses: list[object] = [1, 2, 3, 1.0, "1", "2", True, None]
    checked = 0
    for i in range(80):
        n, m = int(rng.integers(0, 25)), int(rng.integers(1, 12))
        kinds = courses if i % 4 == 0 else courses[:3]
        src = pd.DataFrame({
            "SUBJID": np.array([["1", "2", "3", ""][j] for j in rng.integers(0, 4, n)], dtype=object),
            "COURSE": pd.Series([kinds[j] for j in rng.integers(0, len(kinds), n)],
                                dtype=object if i % 4 == 0 else "float64"),
            "ADMDT": np.array([dates[j] for j in rng.integers(0, 7, n)], dtype=object),
        }).dropna()
        left = {"SUBJID": text_column(pd.Series(rng.choice(["1", "2", "4", ""], m), dtype=object)).to_numpy(),
                "COURSE": text_column(pd.Series(rng.choice([1.0, 2.0, 3.0, np.nan], m))).to_numpy()}
        for by in (["SUBJID"], ["SUBJID", "COURSE"]):
            for smallest in (True, False):
                keys = {k: left[k] for k in by}
                groups = derivations._group_extremes(src, by, "ADMDT", smallest)  # group_date's two steps
                got = None if groups is None else derivations._find_groups(groups, by, keys)
                if got is None:
                    continue
                checked += 1
                expected = derivations._group_extreme_merge(src, by, "ADMDT", smallest, keys)
                assert [(type(v), v if v == v else "nan") for v in got] == [
                    (type(v), v if v == v else "nan") for v in expected
                ]
    assert checked > 150  # most of the 80 x 4 cases reach the fast path


def test_template_equals_text_per_row() -> None:
    from converter.sdtm import algorithms

    rng = np.random.default_rng(8)
    tmpl = "C{COURSE}-D{DAY}-{DRUG}"
    for i in range(300):
        n = int(rng.integers(0, 30))
        frame = pd.DataFrame({
            "COURSE": rng.choice([1.0, 2.0, 2.5, np.nan, -0.0], n),
            "DAY": pd.Series(_mixed_values(rng, n) if i % 2 else rng.integers(1, 4, n), dtype=object if i % 2 else None),
            "DRUG": _text_values(rng, n),
        })
        ctx = type("Ctx", (), {"frame": frame, "col": lambda self, f, fr=frame: fr[f]})()
        got = algorithms.ROW["template"](ctx, {"template": tmpl})  # type: ignore[arg-type]
        texts = {f: text_column(frame[f]).to_numpy() for f in ("COURSE", "DAY", "DRUG")}
        expected = [None if any(texts[f][j] is None for f in texts) else tmpl.format(**{f: texts[f][j] for f in texts})
                    for j in range(n)]
        assert got.tolist() == expected
        assert all(type(v) in (str, type(None)) for v in got)


def test_ct_equals_row_by_row_lookup() -> None:
    from converter.sdtm import algorithms

    rng = np.random.default_rng(9)
    mapping = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "1": "U", "2": ""}
    for i in range(300):
        n = int(rng.integers(0, 30))
        values = _mixed_values(rng, n) if i % 3 == 0 else np.array(
            [["m", "Male", "F", "x", "", None, "FEMALE"][j] for j in rng.integers(0, 7, n)], dtype=object)
        frame = pd.DataFrame({"SEX": values})
        for extensible in (True, False):
            cl = type("CL", (), {"extensible": extensible, "id": "SEX", "code": "C1",
                                 "collected_map": lambda self: mapping})()
            problems: list[object] = []
            ctx = type("Ctx", (), {"frame": frame, "col": lambda self, f, fr=frame: fr[f], "file": "f",
                                   "labels": pd.Series([f"row {j}" for j in range(n)], dtype=object),
                                   "problems": problems, "ct": type("T", (), {"get": lambda self, c, x=cl: x})(),
                                   "spec": type("S", (), {"name": "DM"})(), "var": type("V", (), {"name": "SEX"})()})()
            got = algorithms.ROW["ct"](ctx, {"codelist": "SEX", "field": "SEX"})  # type: ignore[arg-type]
            raw = text_column(frame["SEX"]).to_numpy()
            expected = [None if r is None else mapping.get(r.upper(), r if extensible else None) for r in raw]
            expected = [None if v == "" else v for v in expected]
            assert got.tolist() == expected
            assert len(problems) == (0 if extensible else sum(
                r is not None and r.upper() not in mapping for r in raw))


def test_usubjid_equals_concatenation() -> None:
    from converter.frames import keep_where
    from converter.sdtm import algorithms

    rng = np.random.default_rng(10)
    for i in range(300):
        n = int(rng.integers(0, 30))
        values = _mixed_values(rng, n) if i % 2 else rng.choice([1001.0, 1002.0, np.nan], n)
        frame = pd.DataFrame({"SUBJID": values})
        ctx = type("Ctx", (), {"frame": frame, "col": lambda self, f, fr=frame: fr[f], "schema": None})()
        got = algorithms.ROW["usubjid"](ctx, {"field": "SUBJID", "study": "ST"})  # type: ignore[arg-type]
        ids = text_column(frame["SUBJID"])
        expected = keep_where(("ST-" + ids.fillna("")).astype(object), ids.notna())
        assert [(type(v), v) for v in got] == [(type(v), v) for v in expected]


def test_seq_of_object_numbers_equals_sorted_frame() -> None:
    """Numbers held as objects (the columns of a frame stacked from several sources: ints, floats, NaN) take the
    lexsort path and number the rows as the sorted frame does."""
    from converter.sdtm import algorithms

    rng = np.random.default_rng(5)
    pools: list[list[object]] = [[1, 2, 3, np.int64(2), 10], [np.nan, 1.5, 2.0, -0.0, 0.0, 7.25], [1, 2.0, np.nan, 3, 2]]
    taken = 0
    for i in range(300):
        n = int(rng.integers(1, 40))
        frame = pd.DataFrame({"USUBJID": rng.choice(["S-1", "S-2", "S-10"], n)})
        for c, pool in zip(("PARAMN", "ADT", "SRCSEQ"), pools[i % 3:] + pools[: i % 3], strict=True):
            frame[c] = np.array([pool[j] for j in rng.integers(0, len(pool), n)], dtype=object)
        sort_cols = ["USUBJID", "PARAMN", "ADT", "SRCSEQ"]
        assert all(algorithms._seq_sort_keys(frame[c]) is not None for c in sort_cols)
        expected = algorithms._seq_sorted_frame(frame, ["USUBJID"], sort_cols)
        ctx = algorithms.DatasetContext(frame=frame, built={}, ct=None, spec=None, var=None)  # type: ignore[arg-type]
        got = algorithms.DATASET["seq"](ctx, {"by": ["USUBJID"], "order": ["PARAMN", "ADT", "SRCSEQ"]})
        pd.testing.assert_series_equal(got, expected, check_exact=True, check_names=False)
        taken += 1
    assert taken == 300
    big = pd.Series(np.array([2**60, 1], dtype=object))
    assert algorithms._seq_sort_keys(big) is None  # too large for a float: the sorted frame decides


def test_integer_cast_of_object_integers_equals_to_numeric() -> None:
    """Integers held as objects (with None, NaN, pd.NA among them) cast as to_numeric + round + Int64 casts them."""
    rng = np.random.default_rng(6)
    pools: list[list[object]] = [[1, 2, -3, np.int64(4), 0], [1, None, 2, np.nan, pd.NA, 5], [1, 2**60], [True, 1]]
    for i in range(800):
        pool = pools[i % 4]
        n = int(rng.integers(0, 30))
        values = np.array([pool[j] for j in rng.integers(0, len(pool), n)], dtype=object)
        col = pd.Series(values, name="X", index=pd.RangeIndex(n) + 3)
        expected = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        pd.testing.assert_series_equal(cast_column(col, "integer"), expected, check_exact=True)
