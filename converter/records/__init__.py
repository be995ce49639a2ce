"""EDC records: the CRF form schema (:mod:`.schema`, ``forms.yaml``), the readers and writers of ODM-XML
(:mod:`.odm`) and CSV (:mod:`.csv_io`, :mod:`.sources`, :mod:`.stream` for files read a partition at a time), the
record checks and typing (:mod:`.checks`, :mod:`.cross_checks`), subject partitions (:mod:`.partitions`) and the
synthetic cohort (:mod:`.simulate`, :mod:`.simulation`).

The names below are imported when first used; none is also the name of a module of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.records.checks import CheckReport, check_tables, typed_records
    from converter.records.model import Records, empty_frame
    from converter.records.partitions import partition_number, partition_of, split_records
    from converter.records.raw import RawRead, RawTable
    from converter.records.schema import Field, Form, FormSchema, load_forms
    from converter.records.sources import detect_format, read_raw, read_records, write_records

__all__ = [
    "CheckReport",
    "Field",
    "Form",
    "FormSchema",
    "RawRead",
    "RawTable",
    "Records",
    "check_tables",
    "detect_format",
    "empty_frame",
    "load_forms",
    "partition_number",
    "partition_of",
    "read_raw",
    "read_records",
    "split_records",
    "typed_records",
    "write_records",
]

_WHERE = {
    "FormSchema": "schema",
    "Form": "schema",
    "Field": "schema",
    "load_forms": "schema",
    "detect_format": "sources",
    "read_raw": "sources",
    "read_records": "sources",
    "write_records": "sources",
    "check_tables": "checks",
    "typed_records": "checks",
    "CheckReport": "checks",
    "RawRead": "raw",
    "RawTable": "raw",
    "partition_number": "partitions",
    "partition_of": "partitions",
    "split_records": "partitions",
    "empty_frame": "model",
    "Records": "model",
}


__getattr__ = lazy_names(__name__, _WHERE)
