"""FHIR NDJSON (a Bulk Data export: one or more ``<Type>*.ndjson`` per type) -> SDTM in partitions of subjects.

Memory follows the size of one partition, not of the input:

1. **Routing** (one streaming pass, a line at a time): each resource's subject is found cheaply (a Patient is
   its own subject; other resources by the spec's ``subject_ref`` paths, e.g. ``Observation.subject``,
   ``ResearchSubject.individual``, then ``subject`` / ``patient`` / ``individual`` for types without a spec) and
   the line goes, unchanged, to the spill file of partition ``crc32("Patient/<id>") % N``. Resources that refer
   to their Patient by identifier (``Patient?identifier=system|value``) are held back and routed after the pass
   to the partition of the Patient with that identifier (found in a side file, not in memory). Resources with no
   subject (ResearchStudy, Organization, ... and those whose subject cannot be determined or will have no
   USUBJID, e.g. a Patient with neither id nor USUBJID identifier, so that their rows are numbered together as
   in a whole conversion) go to the *study part*. Each spilled line keeps the file and line (or Bundle entry)
   it came from, so problems name the original input. Lines that are not JSON or not FHIR resources are
   reported there and then.
2. **Converting**: the study part is converted once with :class:`~converter.fhir.to_sdtm.Converter`; then each
   partition with the same converter, the study part given as ``context`` (references to the ResearchStudy
   resolve; it is not converted again). Each part's datasets, outcomes and problems are handed to the caller
   and dropped before the next partition is read.

:func:`stream_to_parts` writes the datasets as Parquet parts (``OUT/<DS>/part-00000.parquet``: the study part,
then one per partition), ``tosdtm-report.csv`` and ``tosdtm-problems.csv`` as it goes. Concatenated (see
:func:`converter.fhir.sdtm_dir.read_parts`), the parts are the datasets of the whole conversion.

Known differences to converting the input whole (none with NDJSON written by ``inoconv fhir``): a Patient found
only inside a Bundle line is routed with its Bundle's entries, not with NDJSON lines referring to it by id from
other files; two Patients sharing the identifier a conditional reference uses may land in different partitions
(the reference then resolves instead of being reported ambiguous); the note counting references that are not
followed counts those that point into another partition.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from converter.errors import Problem, problem
from converter.fhir.fhir_input import file_lines, input_files, json_file, located_from_json, ndjson_documents
from converter.fhir.located import FromFhir, Located
from converter.fhir.mapping import FhirSpecs, rederivations
from converter.fhir.paths import Getter, compile_getter, parse_path
from converter.fhir.resource_checks import identifiers_of, parse_conditional
from converter.fhir.to_fhir import no_gc
from converter.fhir.to_sdtm import Converter
from converter.io.csv_out import dict_writer
from converter.records.partitions import partition_number
from converter.spec.model import DatasetSpec, Terminology

#: subject reference elements tried after the spec's (types without a spec: Encounter, Claim, MedicationRequest...)
FALLBACK_SUBJECT_PATHS = ("subject", "patient", "individual")
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})$")

REPORT_FIELDS = ["file", "where", "resourceType", "id", "status", "dataset", "reason"]
PROBLEM_FIELDS = ["file", "record", "field", "value", "rule", "message"]


# --- routing ------------------------------------------------------------------------------------------------------
class Router:
    """Finds the subject of a resource (its partition key) without converting it."""

    def __init__(self, specs: FhirSpecs, partitions: int) -> None:
        self.partitions = max(1, partitions)
        self.getters: dict[str, list[Getter]] = {}
        seen: dict[str, set[str]] = {}
        for s in specs.sources():
            for e in s.elements:
                if e.kind == "subject_ref" and str(e.path) not in seen.setdefault(s.resource, set()):
                    seen[s.resource].add(str(e.path))
                    self.getters.setdefault(s.resource, []).append(compile_getter(e.path))
        self._fallback = [compile_getter(parse_path(p)) for p in FALLBACK_SUBJECT_PATHS]
        # the Patient identifier that carries USUBJID (as the converter reads it)
        self._id_system: re.Pattern[str] | None = None
        self._id_value: re.Pattern[str] | None = None
        for s in specs.resources.get("Patient", ()):
            if s.identifier is not None and s.direction == "both":
                self._id_system = s.identifier.system.regex()
                self._id_value = s.identifier.value.regex()
                break

    def carries_usubjid(self, system: str, value: str) -> bool:
        """Whether a Patient identifier gives USUBJID (rows of a Patient without id and without one have none)."""
        if self._id_system is None or self._id_value is None or not self._id_system.match(system):
            return False
        m = self._id_value.match(value)
        return m is not None and "USUBJID" in m.groupdict()

    def part_of(self, key: str) -> int:
        return partition_number(key, self.partitions)

    def key_of(
        self,
        res: Mapping[str, Any],
        file: str,
        where: str,
        full_url: str | None,
        aliases: Mapping[str, str | None],
    ) -> tuple[str | None, tuple[str, str] | None]:
        """(partition key, None), (None, (system, value)) for a Patient referred to by identifier, or (None, None)
        for the study part.

        ``aliases``: fullUrl -> key of the Patients of the Bundle the resource came in. Resources whose rows will
        have no USUBJID go to the study part, so that they are numbered together as in a whole conversion.
        """
        rtype = res.get("resourceType")
        if rtype == "Patient":
            rid = res.get("id")
            if isinstance(rid, str):
                return f"Patient/{rid}", None
            if any(self.carries_usubjid(sy, v) for sy, v in identifiers_of(res)):
                return f"{file}#{where}", None
            return None, None  # no id, no USUBJID identifier: its rows have no USUBJID
        for get in [*self.getters.get(str(rtype), ()), *self._fallback]:
            ref = get(res)
            if isinstance(ref, list):
                ref = ref[0] if ref else None
            if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
                continue
            text: str = ref["reference"]
            if text in aliases:
                return aliases[text], None
            m = _PATIENT_REF.search(text)
            if m:
                return f"Patient/{m.group(1)}", None
            cond = parse_conditional(text)
            if cond is not None and cond[0] == "Patient":
                return None, (cond[1], cond[2])
        return None, None


@dataclass
class Routed:
    """The spill files of one input: the study part and one per partition (absent when empty)."""

    study: Path
    parts: list[Path]
    resources: int = 0
    held_back: int = 0  # referred to their Patient by identifier


class _Spill:
    """Appends ``[file, where, fullUrl]\\t<resource JSON>`` lines to the partition files."""

    def __init__(self, folder: Path, router: Router) -> None:
        self.folder = folder
        self.router = router
        self.study_path = folder / "study.spill"
        self.part_paths = [folder / f"part-{k:05d}.spill" for k in range(router.partitions)]
        self.study = open(self.study_path, "wb")  # noqa: SIM115
        self.parts: dict[int, IO[bytes]] = {}
        self.pending = open(folder / "pending.spill", "wb")  # noqa: SIM115
        self.identifiers = open(folder / "patient-identifiers", "wb")  # noqa: SIM115
        self.wanted: set[tuple[str, str]] = set()
        self.ids = array("q")  # hash of "Type/id" per resource with an id, for the check of duplicate ids
        self.resources = 0
        self.held_back = 0

    def _part(self, k: int) -> IO[bytes]:
        fh = self.parts.get(k)
        if fh is None:
            fh = self.parts[k] = open(self.part_paths[k], "wb")  # noqa: SIM115
        return fh

    def add(
        self,
        res: Mapping[str, Any],
        file: str,
        where: str,
        full_url: str | None,
        raw: bytes | None,
        aliases: Mapping[str, str | None],
    ) -> None:
        seq = self.resources
        self.resources += 1
        rid = res.get("id")
        if isinstance(rid, str):
            self.ids.append(hash(f"{res.get('resourceType')}/{rid}"))
        key, cond = self.router.key_of(res, file, where, full_url, aliases)
        body = raw if raw is not None else orjson.dumps(res)
        if key is not None:
            k = self.router.part_of(key)
            self._part(k).write(orjson.dumps([file, where, full_url, seq]) + b"\t" + body + b"\n")
            if res.get("resourceType") == "Patient":
                ids = res.get("identifier")
                for i in ids if isinstance(ids, list) else [ids] if isinstance(ids, dict) else ():
                    if isinstance(i, dict) and isinstance(i.get("value"), str):
                        self.identifiers.write(orjson.dumps([str(i.get("system") or ""), i["value"], k]) + b"\n")
        elif cond is not None:
            self.held_back += 1
            self.wanted.add(cond)
            self.pending.write(orjson.dumps([file, where, full_url, cond[0], cond[1], seq]) + b"\t" + body + b"\n")
        else:
            self.study.write(orjson.dumps([file, where, full_url, seq]) + b"\t" + body + b"\n")

    def finish(self) -> Routed:
        """Route the resources held back (to their Patient's partition), close every file."""
        self.pending.close()
        self.identifiers.close()
        if self.held_back:
            where_is: dict[tuple[str, str], int] = {}
            with open(self.folder / "patient-identifiers", "rb") as fh:
                for line in fh:
                    system, value, k = orjson.loads(line)
                    if (system, value) in self.wanted:
                        where_is.setdefault((system, value), k)
            with open(self.folder / "pending.spill", "rb") as fh:
                for line in fh:
                    head, _, body = line.partition(b"\t")
                    file, where, full_url, system, value, seq = orjson.loads(head)
                    k = where_is.get((system, value))
                    record = orjson.dumps([file, where, full_url, seq]) + b"\t" + body
                    if k is not None:
                        self._part(k).write(record)
                    elif self.router.carries_usubjid(system, value):  # not in the input: the reference says who
                        self._part(self.router.part_of(f"Patient?{system}|{value}")).write(record)
                    else:  # no USUBJID at all: with the other rows without one
                        self.study.write(record)
        self.study.close()
        for part in self.parts.values():
            part.close()
        parts = [p for k, p in enumerate(self.part_paths) if k in self.parts]
        return Routed(self.study_path, parts, self.resources, self.held_back)


def route(path: Path, folder: Path, router: Router, sink: FromFhir) -> Routed:
    """Pass 1: every resource under ``path`` to its partition's spill file in ``folder``; bad lines into ``sink``.

    Reads the files :func:`~converter.fhir.fhir_input.read_input` would, with the same checks, NDJSON a line at a
    time (a ``.json`` Bundle or resource file is read whole, its entries routed one by one). Two resources of one
    type with one id are reported as :func:`~converter.fhir.resource_checks.check_ids` reports them, wherever
    they are routed.
    """
    files, base = input_files(path)
    spill = _Spill(folder, router)
    for f in files:
        name = str(f.relative_to(base)) if f.is_relative_to(base) else f.name
        if f.suffix.lower() == ".ndjson":
            try:
                _route_ndjson(f, name, spill, sink)
            except OSError as exc:
                sink.problems.append(problem(name, "", "", "", "read", f"cannot read ({exc.strerror})"))
            continue
        data = json_file(f, name, sink)
        if data is not None:
            _route_located(located_from_json(data, name, sink), spill)
    routed = spill.finish()
    sink.problems.extend(_duplicate_ids(routed, spill.ids))
    return routed


def _duplicate_ids(routed: Routed, ids: array[int]) -> list[Problem]:
    """The problems of :func:`~converter.fhir.resource_checks.check_ids`, from the spill files: only when two
    resources share the hash of their "Type/id" are the spill files read again, to name them."""
    hashes = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, dtype=np.int64)
    ordered = np.sort(hashes)
    twice = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not twice:
        return []
    seen: dict[str, list[tuple[int, str, str]]] = {}
    for path in [routed.study, *routed.parts]:
        with open(path, "rb") as fh:
            for line in fh:
                head, _, body = line.partition(b"\t")
                res = orjson.loads(body)
                key = f"{res.get('resourceType')}/{res.get('id')}"
                if isinstance(res.get("id"), str) and hash(key) in twice:
                    file, where, _url, seq = orjson.loads(head)[:4]
                    seen.setdefault(key, []).append((seq, file, where))
    out: list[tuple[int, Problem]] = []
    for key, places in seen.items():
        places.sort()
        _s0, file0, where0 = places[0]
        rtype, _, rid = key.partition("/")
        for seq, file, where in places[1:]:
            msg = f"a second {rtype} with id {rid} (the first: {file0} {where0})"
            out.append((seq, problem(file, where, "id", rid, "fhir-duplicate-id", msg)))
    return [p for _seq, p in sorted(out, key=lambda x: x[0])]


def _route_located(items: list[Located], spill: _Spill) -> None:
    """The resources of one Bundle (or one resource): Patients known by fullUrl route their referrers."""
    aliases: dict[str, str | None] = {}
    for it in items:
        if it.rtype == "Patient" and it.full_url:
            aliases[it.full_url] = spill.router.key_of(it.resource, it.file, it.where, None, {})[0]
    for it in items:
        spill.add(it.resource, it.file, it.where, it.full_url, None, aliases)


def _route_ndjson(f: Path, name: str, spill: _Spill, sink: FromFhir) -> None:
    for where, data, line in ndjson_documents(file_lines(f), name, sink):
        if data["resourceType"] == "Bundle":
            _route_located(located_from_json(data, f"{name} {where}", sink), spill)
        else:
            spill.add(data, name, where, None, line, {})


def read_spill(path: Path) -> list[Located]:
    """The resources of one spill file, with the file and place they came from."""
    out: list[Located] = []
    if not path.exists():
        return out
    loads = orjson.loads
    with open(path, "rb") as fh:
        for line in fh:
            head, _, body = line.partition(b"\t")
            file, where, full_url = loads(head)[:3]
            out.append(Located(loads(body), file, where, full_url))
    return out


# --- converting ---------------------------------------------------------------------------------------------------
class PartitionedConversion:
    """``for k, part in conv.parts(): ...`` - the study part (k = 0), then each partition (k = 1..N).

    Each ``part`` is a :class:`FromFhir` of that part only (datasets, outcomes, problems); after the loop
    :attr:`sink` holds what the routing found (bad lines, Bundle entries without a resource, files skipped) and
    the notes of all parts.
    """

    def __init__(
        self,
        path: Path,
        specs: FhirSpecs,
        ct: Terminology | None = None,
        sdtm_specs: Mapping[str, DatasetSpec] | None = None,
        partitions: int = 8,
        validate: bool = True,
        workdir: Path | None = None,
        strict: bool = False,
    ) -> None:
        self.path = Path(path)
        self.strict = strict
        self.specs = specs
        self.ct = ct
        self.sdtm_specs = sdtm_specs
        self.partitions = max(1, partitions)
        self.validate = validate
        self.workdir = workdir
        self.sink = FromFhir(datasets={})
        self.routed: Routed | None = None

    def parts(self) -> Iterator[tuple[int, FromFhir]]:
        if not self.path.exists():
            raise FileNotFoundError(str(self.path))
        with tempfile.TemporaryDirectory(prefix="inoconv-tosdtm-", dir=self.workdir) as tmp:
            router = Router(self.specs, self.partitions)
            routed = self.routed = route(self.path, Path(tmp), router, self.sink)
            conv = Converter(self.specs, self.ct, self.sdtm_specs, self.validate, self.strict)
            study_sink = FromFhir(datasets={})
            with no_gc():
                study = conv.validated(read_spill(routed.study), study_sink)
                conv.convert(study, study_sink, render_notes=False, prevalidated=True)
            Path(routed.study).unlink()
            studyid = dict(conv.studyid)
            self.sink.add_tallies(study_sink)
            yield 0, study_sink
            del study_sink
            for k, spill in enumerate(routed.parts, start=1):
                part = FromFhir(datasets={})
                conv.usubjid.clear()  # keyed by id() of resources of the previous partition, now freed
                conv.studyid = dict(studyid)
                with no_gc():
                    conv.convert(read_spill(spill), part, context=study, render_notes=False)
                spill.unlink()
                self.sink.add_tallies(part)
                yield k, part
                del part
        self.sink.render_notes()


# --- writing ------------------------------------------------------------------------------------------------------
def _merge_dtype(have: str | None, new: str) -> str:
    """The dtype of a column over parts: integer parts with a fractional part elsewhere are float, as whole."""
    if have is None or have == new:
        return new
    if {have, new} <= {"Int64", "float64"}:
        return "float64"
    return "object"


def _study_day_columns(columns: dict[str, dict[str, str]], specs: FhirSpecs) -> None:
    """Study days the whole conversion adds (all null) to rows of subjects without a DM row, when DM has RFSTDTC.

    A partition without such a DM row does not add them; every other column is in some part.
    """
    dm = columns.get("DM", {})
    if "RFSTDTC" not in dm or "USUBJID" not in dm:
        return
    for ds, rules in rederivations(specs).items():
        cols = columns.get(ds)
        if cols is None or "USUBJID" not in cols:
            continue
        for var, rule in rules.items():
            src = rule.get("study_day")
            if src and src in cols:  # derived again, or carried as submitted (text) and typed by the assembly
                cols[var] = "Int64"


@dataclass
class StreamSummary:
    """What :func:`stream_to_parts` wrote."""

    partitions: int
    resources: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # dataset -> rows
    files: dict[str, int] = field(default_factory=dict)  # dataset -> Parquet parts
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)  # resource type -> status -> count
    reasons: dict[str, int] = field(default_factory=dict)  # why not converted -> count
    problems: int = 0
    first_problems: list[Problem] = field(default_factory=list)  # the first ``keep`` problems
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    written: bool = True  # False: the input has problems, only tosdtm-problems.csv was written


def stream_to_parts(
    path: Path,
    out: Path,
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    partitions: int = 8,
    validate: bool = True,
    keep: int = 50,
    workdir: Path | None = None,
    strict: bool = False,
) -> StreamSummary:
    """FHIR under ``path`` -> ``out/<DS>/part-NNNNN.parquet``, ``out/tosdtm-report.csv``, ``out/tosdtm-problems.csv``.

    Memory follows one partition; ``partitions`` is how many the subjects are cut into. When the input has any
    problem, ``out`` holds only ``tosdtm-problems.csv`` (every problem), and ``written`` is False.
    """
    from converter.fhir.sdtm_dir import write_part

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary = StreamSummary(partitions=max(1, partitions))
    conv = PartitionedConversion(path, specs, ct, sdtm_specs, partitions, validate, workdir, strict)
    with (
        open(out / "tosdtm-report.csv", "w", newline="", encoding="utf-8") as rfh,
        open(out / "tosdtm-problems.csv", "w", newline="", encoding="utf-8") as pfh,
    ):
        report = dict_writer(rfh, fieldnames=REPORT_FIELDS)
        report.writeheader()
        probs = dict_writer(pfh, fieldnames=PROBLEM_FIELDS)
        probs.writeheader()

        def account(res: FromFhir) -> None:
            for o in res.outcomes:
                report.writerow(o.as_dict())
                d = summary.statuses.setdefault(o.resource_type or "?", {})
                d[o.status] = d.get(o.status, 0) + 1
                if o.status == "not converted":
                    summary.reasons[o.reason] = summary.reasons.get(o.reason, 0) + 1
            for p in res.problems:
                probs.writerow(p.as_dict())
                if len(summary.first_problems) < keep:
                    summary.first_problems.append(p)
            summary.problems += len(res.problems)

        columns: dict[str, dict[str, str]] = {}  # dataset -> column -> dtype, over all parts
        for k, part in conv.parts():
            bad = bool(summary.problems or conv.sink.problems or part.problems)
            for name, df in part.datasets.items():
                if len(df) == 0:
                    continue
                if not bad:  # once the input has a problem, nothing but the problem report is kept
                    write_part(df, out, name, k)
                summary.rows[name] = summary.rows.get(name, 0) + len(df)
                summary.files[name] = summary.files.get(name, 0) + 1
                seen = columns.setdefault(name, {})
                for c in df.columns:
                    seen[str(c)] = _merge_dtype(seen.get(str(c)), str(df[c].dtype))
            account(part)
        account(conv.sink)
    summary.resources = conv.routed.resources if conv.routed is not None else 0
    summary.notes = list(conv.sink.notes)
    if summary.problems:  # bad input: only tosdtm-problems.csv stays (the parts written before are removed)
        for name in summary.files:
            shutil.rmtree(out / name.upper(), ignore_errors=True)
        (out / "tosdtm-report.csv").unlink()
        summary.written = False
        summary.seconds = time.perf_counter() - t0
        return summary
    _study_day_columns(columns, specs)
    order = Converter(specs, ct, sdtm_specs, validate)
    manifest = {
        "format": "inoconv tosdtm partitioned output 1",
        "datasets": {
            name: {
                "rows": summary.rows[name],
                "parts": summary.files[name],
                "columns": {c: cols[c] for c in order.column_order(name, cols)},  # name -> pandas dtype
            }
            for name, cols in sorted(columns.items())
        },
    }
    (out / "parts.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    summary.statuses = dict(sorted(summary.statuses.items()))
    summary.rows = dict(sorted(summary.rows.items()))
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = [
    "FALLBACK_SUBJECT_PATHS",
    "PartitionedConversion",
    "Routed",
    "Router",
    "StreamSummary",
    "read_spill",
    "route",
    "stream_to_parts",
]
