"""The closed spec expression language (converter/spec/expr.py): hostile specs refused at load with file:line,
allowed constructs evaluated as pandas' eval did, unknown columns refused before data, no eval left in converter/.

Data: small hand-made frames; the example cohort and the bundled mappings/ of this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from converter.errors import SpecError
from converter.spec import Expr, evaluate, evaluate_mask, filter_rows, parse_expression
from converter.spec.loader import check_specs, load_spec, load_terminology, parse_spec
from converter.spec.yamlines import load_yaml_lines

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
ODM = sorted((ROOT / "examples" / "nct01371630" / "odm").glob("*.xml"))[0]


# --- hostile specs through the command line ------------------------------------------------------------------
def _hostile_mappings(tmp_path: Path, where: str) -> Path:
    root = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, root)
    ds = root / "sdtm" / "ds.yaml"
    text = ds.read_text(encoding="utf-8")
    old = """- {id: EOS, form: FU, where: "FUSTAT != 'DEAD'"}"""
    assert old in text
    ds.write_text(text.replace(old, "- {id: EOS, form: FU, where: " + where + "}"), encoding="utf-8")
    return root


def _inoconv(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from converter.cli import app; sys.argv[0] = 'inoconv'; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("template", "construct"),
    [
        ("\"FUSTAT != 'DEAD' and @pd.io.common.os.system('touch {flag}') == 0\"", "@"),
        ("\"FUSTAT != 'DEAD' and __import__('os').system('touch {flag}') == 0\"", "method call .system()"),
        ("\"FUSTAT.str.__class__.__mro__[1].__subclasses__() == 'touch {flag}'\"", ".__subclasses__()"),
        ("\"FUSTAT != 'DEAD' and (lambda: open('{flag}', 'w'))() == 0\"", "function call"),
    ],
)
def test_injection_is_a_spec_error_with_exit_2_and_no_side_effect(
    tmp_path: Path, template: str, construct: str
) -> None:
    flag = tmp_path / "pwned"
    root = _hostile_mappings(tmp_path, template.format(flag=flag))
    env = {**os.environ, "INOCONV_MAPPINGS": str(root)}
    result = _inoconv(["sdtm", str(ODM), "--out", str(tmp_path / "out")], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert not flag.exists()
    said = result.stdout + result.stderr
    assert "ds.yaml:14" in said and "source EOS where" in said and construct in said, said
    assert "Traceback" not in said
    assert not (tmp_path / "out").exists()


# --- every construct outside the language refused, with file:line ------------------------------------------
REFUSED = {
    "@x == 1": "@",
    "AESER.str.len() > 2": "method call .len()",
    "AESER.str == 'Y'": "attribute access",
    "len(AESER) > 0": "the call len()",
    "length(A, B) > 0": "length() takes 1 argument",
    "contains(A, B)": "second argument of contains() must be a text literal",
    "contains(A, text='x')": "given by position",
    "round(A, 1.5)": "integer literal 0..15",
    "round(A, 99)": "integer literal 0..15",
    "round(__import__('os'))": "the call __import__()",
    "print": "builtin name 'print'",
    "__class__ == 1": "dunder name",
    "AESER[0] == 'Y'": "subscript",
    "(lambda: 1)() == 1": "function call",
    "lambda: 1": "lambda",
    "[x for x in AESER]": "comprehension",
    "{x for x in AESER}": "comprehension",
    "(x for x in AESER)": "generator",
    "f'{AESER}' == 'Y'": "f-string",
    "(A := 1) == 1": ":=",
    "A if B else C": "conditional expression",
    "{'a': 1} == A": "dict literal",
    "{1, 2} == A": "set literal",
    "A is None": "is (write COL.isna())",
    "A is not None": "is not",
    "A & B": "& (write and)",
    "A | B": "| (write or)",
    "~A": "~ (write not)",
    "A ** 2": "**",
    "A % 2": "%",
    "A // 2": "//",
    "A in B": "list or tuple of literals",
    "A in [B]": "literals only",
    "[1, 2] == A": "list is allowed only",
    "A.isna(1)": "takes no arguments",
    "A.isnull()": "method call .isnull()",
    "(A + 1).notna()": "on a column name only",
    "b'x' == A": "bytes literal",
    "1j == A": "complex literal",
    "... == A": "ellipsis literal",
    "--STRESN.notna()": "--VAR placeholder",
    "A == 1; B == 2": "not a valid expression",
    "import os": "not a valid expression",
    "A ==": "not a valid expression",
    "": "empty expression",
    "A == 'x\x07'": "control character",
    "not " * 60 + "A": "nested deeper than 50 levels",
}


@pytest.mark.parametrize(("text", "construct"), sorted(REFUSED.items()))
def test_disallowed_construct_is_refused_with_file_and_line(text: str, construct: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_expression(text, file="specs/x.yaml", line=7)
    msg = exc.value.messages[0]
    assert msg.startswith("specs/x.yaml:7: expression "), msg
    assert construct in msg, msg
    assert "\x07" not in msg


def test_refused_in_a_spec_file_names_file_line_and_source(tmp_path: Path) -> None:
    spec = tmp_path / "ds.yaml"
    spec.write_text(
        "dataset: DS\nlabel: Disposition\nsources:\n  - {id: EOS, form: FU}\n"
        "  - id: DONE\n    form: FU\n    where: \"FUSTAT.str.startswith('D')\"\n"
        "variables:\n  - {name: USUBJID, label: U, type: text, rule: {usubjid: SUBJID}}\n"
        "  - name: DSDECOD\n    label: D\n    type: text\n    rule:\n      case:\n"
        "        when: [[\"__import__('os')\", X]]\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    text = "\n".join(exc.value.messages)
    assert f"{spec}:7: source DONE where: expression" in text and "method call .startswith()" in text
    assert f"{spec}:15: variable DSDECOD rule case when[0]: expression" in text and "call __import__()" in text


# --- allowed constructs: the same values as pandas' eval (engine="python") gave ----------------------------
FRAME = pd.DataFrame(
    {
        "A": ["x", None, "y", np.nan, "x"],
        "B": [1.0, np.nan, 3.0, 0.0, -2.5],
        "C": pd.array([1, None, 2, 3, 0], dtype="Int64"),
        "D": ["2020-01-01", "2020-02", None, "2019", "2020-01-01"],
        "E": [True, False, True, False, True],
    }
)
ALLOWED = [
    "A == 'x'",
    "A != 'x'",
    "'x' == A",
    "A == None",
    "B > 0",
    "B >= 1",
    "B < 3",
    "B <= 0",
    "C > 1",
    "C == 2",
    "D > '2020'",
    "A in ['x', 'y']",
    "A in ('y',)",
    "A not in ['x']",
    "A in ['x', None]",
    "B in [1, 3.0]",
    "B not in [-2.5]",
    "A.notna()",
    "A.isna()",
    "B.isna()",
    "C.notna()",
    "not A.isna()",
    "A.notna() and B > 0",
    "A.isna() or B == 0",
    "A == 'x' and B > 0 or C == 3",
    "A == 'x' and (B > 0 or C == 3)",
    "not (A == 'y')",
    "E",
    "E and B > 0",
    "1 < B < 3",
    "0 <= B <= 3",
    "B * 2 + 1",
    "-B / 2",
    "B - C",
    "C + B",
    "(B + 1) * (C - 1)",
    "B / 0",
    "-(B)",
    "+B",
    "True",
    "1 == 1",
    "A == 'x' and True",
    'AESER == "Y"'.replace("AESER", "A"),
]


@pytest.mark.parametrize("text", ALLOWED)
def test_allowed_construct_equals_pandas_eval(text: str) -> None:
    expr = parse_expression(text, file="t.yaml", line=1)
    got = evaluate(expr, FRAME)
    want = FRAME.eval(text, engine="python")  # the old evaluation, as the oracle
    if not isinstance(want, pd.Series):
        want = pd.Series([want] * len(FRAME), index=FRAME.index)
    pd.testing.assert_series_equal(got, want, check_names=False)
    mask = evaluate_mask(expr, FRAME)
    assert mask.dtype == bool and mask.tolist() == want.astype(object).where(want.notna(), False).astype(bool).tolist()


FUNCTION_ORACLES = [
    ("length(D) == 10", "D.str.len() == 10"),
    ("length(D)", "D.str.len()"),
    ("contains(A, 'x')", "A.str.contains('x', regex=False, na=False)"),
    ("contains(D, '2020') and B > 0", "D.str.contains('2020', regex=False, na=False) and B > 0"),
    ("B == round(B)", "B == B.round()"),
]


@pytest.mark.parametrize(("text", "old"), FUNCTION_ORACLES)
def test_functions_equal_the_pandas_methods_they_replace(text: str, old: str) -> None:
    got = evaluate(parse_expression(text, file="t.yaml", line=1), FRAME)
    pd.testing.assert_series_equal(got, FRAME.eval(old, engine="python"), check_names=False, check_dtype=False)


def test_round_is_half_away_from_zero_and_contains_is_literal() -> None:
    frame = pd.DataFrame({"X": [0.5, 1.5, 2.5, -2.5, 2.675, np.nan], "T": ["A|B", "AB", None, "a|b", "x", "A|B"]})
    assert evaluate(parse_expression("round(X)", file="f", line=1), frame).tolist()[:5] == [1.0, 2.0, 3.0, -3.0, 3.0]
    assert evaluate(parse_expression("round(X, 2)", file="f", line=1), frame).tolist()[4] == 2.68
    assert np.isnan(evaluate(parse_expression("round(X, 1)", file="f", line=1), frame).iloc[5])
    hits = evaluate(parse_expression("contains(T, 'A|B')", file="f", line=1), frame)
    assert hits.tolist() == [True, False, False, False, False, True]  # no pattern language, case-sensitive


def test_every_expression_in_the_bundled_specs_equals_pandas_eval() -> None:
    texts: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            if key == "when" and all(isinstance(p, list) for p in node):
                texts.update(str(p[0]) for p in node)
            else:
                for v in node:
                    walk(v, key)
        elif isinstance(node, str) and key in ("where", "filter", "expr", "when") and "${" not in node:
            texts.add(node)

    for folder in ("sdtm", "adam", "fhir"):
        for p in sorted((MAPPINGS / folder).glob("*.yaml")):
            walk(yaml.safe_load(p.read_text(encoding="utf-8")))
    texts = {t.replace("--", "LB") for t in texts if not t.startswith("cd")}
    assert len(texts) > 30
    rng = np.random.default_rng(7)
    for text in sorted(texts):
        expr = parse_expression(text, file="spec", line=1)
        values = ["DEATH", "RELAPSE", "CR", "Y", "N", "OVRLRESP", "MRD", "NEGATIVE", "TITLE", None, np.nan]
        frame = pd.DataFrame({n: rng.choice(np.array(values, dtype=object), 40) for n in sorted(expr.names)})
        for name in _compared_with_numbers(text):  # numeric columns (EXDOSE > 0, AEGRADE == 5, ...)
            frame[name] = rng.choice([0.0, 1.5, 5.0, np.nan], 40)
        want = frame.eval(text, engine="python")
        pd.testing.assert_series_equal(evaluate(expr, frame), want, check_names=False)


def _compared_with_numbers(text: str) -> set[str]:
    """Names that the expression compares with a number literal, or uses in arithmetic."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(text, mode="eval")):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            if any(isinstance(x, ast.Constant) and isinstance(x.value, int | float) for x in parts):
                found.update(x.id for x in parts if isinstance(x, ast.Name))
        elif isinstance(node, ast.BinOp):
            found.update(x.id for x in (node.left, node.right) if isinstance(x, ast.Name))
    return found


def test_filter_rows_and_absent_columns() -> None:
    expr = parse_expression("A == 'x' and B > 0", file="f", line=2)
    assert filter_rows(FRAME, expr).index.tolist() == [0]
    assert filter_rows(FRAME, None) is FRAME
    assert filter_rows(FRAME.iloc[:0], expr).empty
    absent = parse_expression("NOPE.isna() and A == 'x'", file="f", line=3)
    assert evaluate_mask(absent, FRAME, absent_as_null=True).tolist() == [True, False, False, False, True]
    with pytest.raises(SpecError, match=r"f:3: expression .*no column 'NOPE'"):
        evaluate(absent, FRAME)


def test_expr_compares_and_prints_as_its_text() -> None:
    a = parse_expression("A == 'x'", file="a.yaml", line=1)
    b = parse_expression("A == 'x'", file="b.yaml", line=9)
    assert a == b and hash(a) == hash(b) and str(a) == "A == 'x'" and repr(a) == repr("A == 'x'")
    assert isinstance(a, Expr) and a.names == frozenset({"A"})
    assert repr({"filter": a}) == repr({"filter": "A == 'x'"})  # Define-XML method texts unchanged


# --- unknown columns refused at load, with file:line -----------------------------------------------------------
def test_unknown_column_in_sdtm_where_and_case_refused_before_data(tmp_path: Path) -> None:
    from converter.records.schema import load_forms

    spec = tmp_path / "xx.yaml"
    spec.write_text(
        'dataset: XX\nlabel: Test\nsources:\n  - {id: A, form: AE, where: "AETERMX.notna()"}\n'
        "variables:\n  - {name: USUBJID, label: U, type: text, rule: {usubjid: SUBJID}}\n"
        '  - {name: Y, label: Y, type: text, rule: {case: {when: [["USUBJID.notna() and LATER == 1", Y]]}}}\n'
        "  - {name: LATER, label: L, type: text, rule: {assign: X}}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as exc:
        check_specs({"XX": load_spec(spec)}, load_forms(MAPPINGS / "records" / "forms.yaml"), load_terminology())
    text = "\n".join(exc.value.messages)
    assert f"{spec}:4: source A where: expression 'AETERMX.notna()': unknown column 'AETERMX'" in text
    assert "did you mean AETERM" in text
    assert f"{spec}:7: variable Y rule case" in text and "unknown column 'LATER'" in text


def test_unknown_column_in_adam_filter_refused_against_the_sdtm_columns(tmp_path: Path) -> None:
    from converter.adam.pipeline import load_adam_specs

    root = tmp_path / "adam"
    shutil.copytree(MAPPINGS / "adam", root)
    adsl = root / "adsl.yaml"
    adsl.write_text(adsl.read_text(encoding="utf-8").replace('filter: "EXDOSE > 0"', 'filter: "EXDOSX > 0"', 1))
    line = next(i for i, t in enumerate(adsl.read_text().splitlines(), 1) if "EXDOSX" in t)
    with pytest.raises(SpecError) as exc:
        load_adam_specs(root, MAPPINGS / "ct")
    text = "\n".join(exc.value.messages)
    assert f"{adsl}:{line}: variable" in text and "unknown column 'EXDOSX'" in text and "EXDOSE" in text


def test_fhir_expression_refused_with_file_and_line(tmp_path: Path) -> None:
    from converter.fhir.mapping import load_fhir_specs

    root = tmp_path / "fhir"
    shutil.copytree(MAPPINGS / "fhir", root)
    proc = root / "procedure.yaml"
    text = proc.read_text(encoding="utf-8")
    proc.write_text(text.replace('when: "PRENDTC.isna()"', "when: \"PRENDTC.isna() or @os.system('x')\""))
    line = next(i for i, t in enumerate(proc.read_text().splitlines(), 1) if "@os" in t)
    with pytest.raises(SpecError) as exc:
        load_fhir_specs(root)
    assert any(m.startswith(f"procedure.yaml:{line}: when: expression") and "@" in m for m in exc.value.messages)
    proc.write_text(text.replace('when: "PRENDTC.isna()"', 'when: "prendtc.isna()"'))
    with pytest.raises(SpecError, match=r"'prendtc' .* is not an SDTM variable name"):
        load_fhir_specs(root)


# --- YAML: alias bombs, recursion, control characters --------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    out = 'dataset: DM\nlabel: x\nl0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels + 1):
        out += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return out + "variables: *l9\n"


def test_alias_bomb_is_refused_with_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "sdtm" / "dm.yaml"
    spec.parent.mkdir()
    spec.write_text(_bomb(), encoding="utf-8")  # 9**10 strings once expanded
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(SpecError) as exc:
        load_yaml_lines(spec)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MiB to refuse a 1 KB file"  # refused on the node graph
    assert re.match(rf"{re.escape(str(spec))}:\d+: this node expands to more than 200,000 nodes", exc.value.messages[0])
    from converter.spec.loader import load_specs

    with pytest.raises(SpecError, match="alias"):
        load_specs(spec.parent)
    spec.write_text(_bomb(30), encoding="utf-8")  # 9**31 nodes once expanded: refused all the same
    with pytest.raises(SpecError, match="expands to more than"):
        load_yaml_lines(spec)


def test_small_aliases_recursion_and_control_characters(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text("base: &b [USUBJID, AESEQ]\nkeys: *b\norder: *b\n")
    doc = load_yaml_lines(ok)
    assert doc["keys"] == doc["order"] == ["USUBJID", "AESEQ"]
    rec = tmp_path / "rec.yaml"
    rec.write_text("a: &a\n  - *a\n")
    with pytest.raises(SpecError, match="recursive alias"):
        load_yaml_lines(rec)
    ctl = tmp_path / "ctl.yaml"
    ctl.write_text('dataset: DM\nlabel: "De\\u0000mographics"\n')
    with pytest.raises(
        SpecError, match=r"ctl.yaml:2: a control character \(U\+0000\) in the value 'De\\x00mographics'"
    ):
        load_yaml_lines(ctl)
    tab = tmp_path / "tab.yaml"
    tab.write_text('a: "x\\ty"\n')
    with pytest.raises(SpecError, match="U\\+0009"):
        load_yaml_lines(tab)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 150 + "]" * 150 + "\n")
    with pytest.raises(SpecError, match="nested more than 100 levels"):
        load_yaml_lines(deep)


def test_every_bundled_spec_loads_within_the_bounds() -> None:
    for p in sorted(MAPPINGS.rglob("*.yaml")):
        load_yaml_lines(p)


# --- nothing in converter/ evaluates text as Python ---------------------------------------------------------
def test_no_eval_or_query_left_in_converter() -> None:
    pattern = re.compile(r"\.eval\(|\.query\(|(?<![\w.])eval\(|(?<![\w.])pd\.eval\b")
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted((ROOT / "converter").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_sdtm_specs_parse_expressions_once(tmp_path: Path) -> None:
    spec = load_spec(MAPPINGS / "sdtm" / "ds.yaml")
    eos = next(s for s in spec.sources if s.id == "EOS")
    assert isinstance(eos.where, Expr) and str(eos.where) == "FUSTAT != 'DEAD'" and eos.where.line == 14
    doc = {"dataset": "XX", "label": "T", "sources": [{"id": "S", "form": "AE", "where": "AESER == 'Y'"}],
           "variables": [{"name": "A", "label": "A", "type": "text", "rule": {"case": {"when": [["AESER == 'Y'", "Y"]]}}}]}  # fmt: skip
    parsed = parse_spec(doc, tmp_path / "xx.yaml")
    assert isinstance(parsed.variables[0].rules["*"].args["when"][0][0], Expr)


# --- random expressions: the same values as pandas' eval, over frames with every kind of missing value ----------
def _random_expression(rng: np.random.Generator, depth: int = 0) -> str:
    text_cols, num_cols = ["S", "T"], ["N", "M", "I"]
    words = ["'a'", "'b'", "'c'", '"a"']
    kind = rng.integers(0, 7 if depth < 3 else 4)
    if kind == 0:
        return f"{rng.choice(text_cols)} {rng.choice(['==', '!='])} {rng.choice(words)}"
    if kind == 1:
        op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
        return f"{rng.choice(num_cols)} {op} {rng.choice(['0', '1', '2.5', '-1'])}"
    if kind == 2:
        items = ", ".join(rng.choice([*words, "None"], size=int(rng.integers(1, 4))))
        return f"{rng.choice(text_cols)} {rng.choice(['in', 'not in'])} [{items}]"
    if kind == 3:
        return f"{rng.choice([*text_cols, *num_cols])}.{rng.choice(['isna', 'notna'])}()"
    if kind == 4:
        left, right = _random_expression(rng, depth + 1), _random_expression(rng, depth + 1)
        return f"({left}) {rng.choice(['and', 'or'])} ({right})"
    if kind == 5:
        return f"not ({_random_expression(rng, depth + 1)})"
    a, b = rng.choice(num_cols, size=2)
    return f"({a} {rng.choice(['+', '-', '*', '/'])} {b}) {rng.choice(['>', '<=', '=='])} {rng.choice(['0', '1'])}"


def test_random_expressions_equal_pandas_eval() -> None:
    rng = np.random.default_rng(20240329)
    n = 60
    texts = np.array(["a", "b", "c", None, np.nan, ""], dtype=object)
    frame = pd.DataFrame(
        {
            "S": rng.choice(texts, n),
            "T": pd.Series(rng.choice(np.array(["a", "b", pd.NA, None], dtype=object), n), dtype=object),
            "N": rng.choice(np.array([0.0, 1.0, 2.5, -1.0, np.nan]), n),
            "M": pd.array(rng.choice([0, 1, 2, -1], n), dtype="Int64"),
            "I": rng.choice([0, 1, 2], n),
        }
    )
    frame.loc[frame.index[::7], "M"] = pd.NA
    seen = 0
    for _ in range(400):
        text = _random_expression(rng)
        want = frame.eval(text, engine="python")
        got = evaluate(parse_expression(text, file="r", line=1), frame)
        pd.testing.assert_series_equal(got, want, check_names=False, obj=text)
        seen += 1
    assert seen == 400
