"""lxml errors reach the user as text with the line once: never a Python bytes literal, never lxml's
"(file, line N)" suffix repeated after the line the problem already names."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from converter.cli import app
from converter.io.define import validate_define
from converter.io.xml_errors import describe_xml_error, xml_error

EXAMPLE_ODM = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "odm" / "nct01371630.xml"


def _syntax_error(text: str) -> etree.XMLSyntaxError:
    with pytest.raises(etree.XMLSyntaxError) as info:
        etree.fromstring(text.encode())
    return info.value


def test_plain_parse_error() -> None:
    err = _syntax_error("<a>\n<b></c>\n</a>")
    line, msg = xml_error(err)
    assert line == 2 and msg.startswith("Opening and ending tag mismatch: b line 2 and c")
    assert "line 2," not in msg and "(column" in msg
    assert describe_xml_error(err).startswith("line 2: Opening")


class _Wrapped(etree.XMLSyntaxError):  # lxml's wording when a schema validates while it parses
    def __init__(self, msg: str, lineno: int) -> None:
        self.msg, self.lineno = msg, lineno


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ('line 52: b"Couldn\'t find end of Start Tag ItemGroupRef"', "Couldn't find end of Start Tag ItemGroupRef"),
        ("line 7: b'Premature end of data in tag ODM line 2'", "Premature end of data in tag ODM line 2"),
        ("line 9: b'caf\\xc3\\xa9 is not allowed'", "café is not allowed"),
    ],
)
def test_bytes_literal_becomes_text(raw: str, text: str) -> None:
    line, msg = xml_error(_Wrapped(raw, int(raw.split()[1].rstrip(":"))))
    assert msg == text and line == int(raw.split()[1].rstrip(":"))


def test_odm_syntax_error_through_the_cli(tmp_path: Path) -> None:
    head = EXAMPLE_ODM.read_text(encoding="utf-8")[:3000]
    bad = tmp_path / "broken.xml"
    bad.write_text(head + "\n</Nope>\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["sdtm", str(bad), "--out", str(tmp_path / "out")])
    text = res.output
    assert res.exit_code == 2, text
    shown = [ln for ln in text.splitlines() if "[xml]" in ln]
    assert shown, text
    for ln in shown:
        assert "b'" not in ln and 'b"' not in ln, ln
        assert ln.count("line ") == 1 + ln.split("] ", 1)[1].count("line "), ln  # the line once, in the record
    assert not (tmp_path / "out").exists()


def test_define_syntax_error_is_text(tmp_path: Path) -> None:
    bad = tmp_path / "define.xml"
    bad.write_text('<?xml version="1.0"?>\n<ODM>\n<Study></ODM>\n', encoding="utf-8")
    (problem,) = validate_define(bad)
    assert problem.startswith(f"{bad}: line 3: Opening and ending tag mismatch"), problem
    assert "b'" not in problem and "(define.xml, line" not in problem
