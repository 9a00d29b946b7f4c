"""A ligand-model challenge: evaluate every submitted model, resumably and in parallel, and report.

The submissions table is a CSV with the columns ``target, map, resolution, model`` and optionally
``reference, group, ligand, ligand_definition`` (paths relative to the CSV's folder). Each row is
evaluated with :func:`ligfit.evaluate.metrics.evaluate_model` in a worker process and its result
written at once to ``rows/<id>.json``; a rerun skips rows whose result is there and whose inputs
(fields, file sizes and modification times) have not changed, so an interrupted run picks up where
it stopped. A row with bad input is recorded as failed and the run goes on. At the end
``scores.csv`` (one line per model ligand, ranked by the composite score among the same ligand of
each target) and
``report.html`` (with a picture of each ligand in its density and a Q-score plot, see
:mod:`ligfit.pictures`) are written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ligfit import io, pictures
from ligfit.errors import LigfitError
from ligfit.evaluate import metrics
from ligfit.evaluate.errors import BadSubmissionsError
from ligfit.io import atomic_path, write_text
from ligfit.maps import DensityMap
from ligfit.runtime import Progress, connect_scheduler, json_ready, no_progress

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("target", "map", "resolution", "model")
OPTIONAL_COLUMNS = ("reference", "group", "ligand", "ligand_definition")
SCORE_COLUMNS = (
    "target", "rank", "group", "model", "ligand", "residue_name", "status", "composite", "q_score", "expected_q_score", "cc_mask", "cc_box",
    "cc_volume", "cc_peaks", "rmsd", "lddt_pli", "pocket_ca_rmsd", "pocket_ca_lddt", "contact_recovery", "bond_rmsz",
    "angle_rmsz", "chirality_errors", "nonplanar_planes", "rare_torsions", "clash_count", "model_q_score", "model_cc_mask", "clashscore",
    "row", "error",
)  # fmt: skip


@dataclass(frozen=True)
class Submission:
    """One row of the submissions table, with paths resolved against the table's folder."""

    row: int  # line number in the CSV (header is line 1)
    target: str
    map: str
    resolution: str
    model: str
    reference: str = ""
    group: str = ""
    ligand: str = ""
    ligand_definition: str = ""

    @property
    def key(self) -> str:
        """Identity of the row's inputs: its fields and the size and time of each file it names."""
        parts = [json.dumps(asdict(self), sort_keys=True)]
        for path in (self.map, self.model, self.reference):
            if path and os.path.isfile(path):
                info = os.stat(path)
                parts.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]

    @property
    def file_stem(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{self.target}_{self.group}")[:40]
        return f"{self.row:04d}_{safe}_{self.key}"


@dataclass(frozen=True)
class ChallengeResult:
    """Where the results are and what happened: one record per row, and the scores table."""

    folder: Path
    records: list[dict]
    scores: list[dict]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def bugs(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "bug"]


def read_submissions(path: str | os.PathLike) -> list[Submission]:
    """Parse the submissions CSV; raise ``BadSubmissionsError`` for a missing file, column or empty table."""
    path = Path(path)
    if not path.is_file():
        raise BadSubmissionsError(f"{path}: no such submissions table; check the path")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise BadSubmissionsError(
                f"{path}: missing column(s) {', '.join(missing)}; the table needs {', '.join(REQUIRED_COLUMNS)} "
                f"and may have {', '.join(OPTIONAL_COLUMNS)}"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise BadSubmissionsError(f"{path}: the submissions table has no rows")
    folder = path.parent
    return [
        Submission(
            row=line,
            target=row["target"],
            map=_resolve(folder, row["map"]),
            resolution=row["resolution"],
            model=_resolve(folder, row["model"]),
            reference=_resolve(folder, row.get("reference", "")),
            group=row.get("group", ""),
            ligand=row.get("ligand", ""),
            ligand_definition=row.get("ligand_definition", ""),
        )
        for line, row in enumerate(rows, start=2)
    ]


def _resolve(folder: Path, value: str) -> str:
    return "" if not value else str(value if os.path.isabs(value) else folder / value)


def run_challenge(
    submissions: str | os.PathLike,
    output: str | os.PathLike,
    *,
    workers: int | None = None,
    retry_failed: bool = False,
    whole_model: bool = True,
    progress: Progress = no_progress,
    scheduler: str | object | None = None,
) -> ChallengeResult:
    """Evaluate every row of ``submissions`` into ``output`` (created if needed) and write the report.

    ``workers``: processes (default: all cores; 1 runs in this process). Rows already evaluated
    with the same inputs are reused; recorded failures are retried only with ``retry_failed``.
    ``scheduler``: a Dask scheduler address (or ``distributed.Client``) to run the rows on instead;
    its workers must see the submissions' files and ``output`` at the same paths (a shared filesystem).
    """
    rows = read_submissions(submissions)
    client = None
    if isinstance(scheduler, str):
        client = connect_scheduler(scheduler)  # before anything is written: an address that does not answer is one error line
    folder = Path(output)
    (folder / "rows").mkdir(parents=True, exist_ok=True)
    (folder / "pictures").mkdir(exist_ok=True)
    records: dict[int, dict] = {}
    pending = []
    for submission in rows:
        done = _previous_record(folder, submission)
        if done is not None and (done["status"] == "ok" or not retry_failed):
            records[submission.row] = done
        else:
            pending.append(submission)
    if len(rows) > len(pending):
        progress(f"{len(rows) - len(pending)} of {len(rows)} rows already evaluated; {len(pending)} to go")
    try:
        for record in _evaluate_all(pending, folder, workers or os.cpu_count() or 1, whole_model, client or scheduler):
            records[record["submission"]["row"]] = record
            progress(_progress_line(record, len(records), len(rows)), len(records), len(rows))
    finally:
        if client is not None:
            client.close()
    ordered = [records[s.row] for s in rows]
    scores = score_table(ordered)
    _write_scores(folder / "scores.csv", scores)
    from ligfit.evaluate.html import challenge_report

    write_text(folder / "report.html", challenge_report(ordered, scores))
    return ChallengeResult(folder, ordered, scores)


def _previous_record(folder: Path, submission: Submission) -> dict | None:
    path = folder / "rows" / f"{submission.file_stem}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so only a hand-edited file gets here; evaluate again


def _evaluate_all(pending: list[Submission], folder: Path, workers: int, whole_model: bool, client: object | None = None):
    if client is not None and pending:
        from distributed import as_completed as dask_completed

        futures = [client.submit(evaluate_submission, submission, folder, whole_model, pure=False) for submission in pending]
        for future in dask_completed(futures, loop=client.loop):
            yield future.result()
        return
    if workers <= 1 or len(pending) <= 1:
        for submission in pending:
            yield evaluate_submission(submission, folder, whole_model)
        return
    # spawn: workers start clean instead of inheriting the parent's threads and open files.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context) as pool:
        futures = [pool.submit(evaluate_submission, submission, folder, whole_model) for submission in pending]
        for future in as_completed(futures):
            yield future.result()


def evaluate_submission(submission: Submission, folder: Path, whole_model: bool = True) -> dict:
    """Evaluate one row, write ``rows/<id>.json`` and the ligand pictures, and return the record.

    Bad input is recorded as ``failed`` with its one-line message; any other exception is a bug
    in ligfit and is recorded as ``bug`` with its traceback, so that one row cannot stop a challenge.
    """
    started = time.perf_counter()
    record: dict = {"submission": asdict(submission), "key": submission.key}
    try:
        record.update(_evaluate(submission, folder, whole_model))
        record["status"] = "ok"
    except LigfitError as error:
        record.update(status="failed", error=str(error))
    except Exception as error:  # noqa: BLE001 - recorded as a bug with its traceback, and reported by the caller
        record.update(status="bug", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
    record["elapsed_s"] = round(time.perf_counter() - started, 2)
    write_text(folder / "rows" / f"{submission.file_stem}.json", json.dumps(json_ready(record), indent=1) + "\n")
    return json_ready(record)


def _evaluate(submission: Submission, folder: Path, whole_model: bool) -> dict:
    for label, path in (("map", submission.map), ("model", submission.model), ("reference", submission.reference)):
        if label != "reference" and not path:
            raise BadSubmissionsError(f"row {submission.row}: no {label} given")
        if path and not os.path.isfile(path):
            raise BadSubmissionsError(f"row {submission.row}: {label} file {path} does not exist; fix the path in the table")
    try:
        resolution = float(submission.resolution)
    except ValueError:
        raise BadSubmissionsError(f"row {submission.row}: resolution {submission.resolution!r} is not a number of Å") from None
    structure, density = metrics.load_inputs(submission.model, submission.map)
    evaluation = metrics.evaluate_model(
        structure,
        density,
        resolution,
        reference_model=submission.reference or None,
        ligands=[n.strip() for n in submission.ligand.split(";") if n.strip()] or None,
        ligand_definition=submission.ligand_definition or None,
        whole_model=whole_model,
    )
    picture_files = {}
    protein = io.heavy_atoms(structure)
    for ligand in evaluation.ligands:
        name = f"{submission.file_stem}_{''.join(ch if ch.isalnum() else '_' for ch in ligand['ligand'])}.png"
        _write_picture(folder / "pictures" / name, density, ligand, protein)
        picture_files[ligand["ligand"]] = f"pictures/{name}"
    return {"evaluation": evaluation.as_dict(), "pictures": picture_files}


def _write_picture(path: Path, density: DensityMap, ligand: dict, protein: io.AtomTable) -> None:
    """The ligand (an Evaluation ligand dict) in its density from three directions, pocket in sticks, atoms coloured by Q."""
    xyz = np.asarray(ligand["coordinates"], dtype=float)
    residue_ids = [f"{c}:{n}" for c, n in zip(protein.chain, protein.residue_number)]
    pocket = pictures.pocket_sticks(protein.coordinates, protein.elements, residue_ids, xyz)
    sticks = pictures.Sticks(xyz, ligand["elements"], ligand["bonds"])
    png = pictures.density_views(density, sticks, pocket=pocket, atom_q=ligand["atom_q_scores"], title=ligand["ligand"])
    with atomic_path(path) as temporary:
        temporary.write_bytes(png)


def _progress_line(record: dict, done: int, total: int) -> str:
    submission = record["submission"]
    what = f"[{done}/{total}] row {submission['row']} {submission['target']} {submission['group']}".rstrip()
    if record["status"] != "ok":
        return f"{what}: {record['status']}: {record['error']}"
    ligands = record["evaluation"]["ligands"]
    best = max((lig["composite"] for lig in ligands if lig["composite"] is not None), default=None)
    return f"{what}: {len(ligands)} ligand(s), best composite {best:.3f} ({record['elapsed_s']} s)" if best is not None else what


def score_table(records: list[dict]) -> list[dict]:
    """One line per model ligand (one per failed row), ranked by composite among the same ligand of each target."""
    lines = []
    for record in records:
        submission = record["submission"]
        base = {"target": submission["target"], "group": submission["group"], "model": submission["model"], "row": submission["row"]}
        if record["status"] != "ok":
            lines.append({**base, "status": record["status"], "error": record["error"]})
            continue
        evaluation = record["evaluation"]
        model = evaluation["model"]
        for ligand in evaluation["ligands"]:
            reference = ligand.get("reference") or {}
            geometry = ligand.get("geometry") or {}
            lines.append(
                {
                    **base,
                    "status": "ok",
                    "ligand": ligand["ligand"],
                    "residue_name": ligand["residue_name"],
                    "composite": ligand["composite"],
                    "q_score": ligand["q_score"],
                    "expected_q_score": evaluation["expected_q_score"],
                    **{k: ligand[k] for k in ("cc_mask", "cc_box", "cc_volume", "cc_peaks", "clash_count")},
                    **{k: reference.get(k) for k in ("rmsd", "lddt_pli", "pocket_ca_rmsd", "pocket_ca_lddt", "contact_recovery")},
                    **{k: geometry.get(k) for k in ("bond_rmsz", "angle_rmsz", "chirality_errors", "nonplanar_planes", "rare_torsions")},
                    "model_q_score": model.get("q_score"),
                    "model_cc_mask": model.get("cc_mask"),
                    "clashscore": model.get("clashscore"),
                    "error": "; ".join(evaluation["notes"]),
                }
            )
    for target, residue_name in dict.fromkeys((line["target"], line.get("residue_name")) for line in lines):
        ranked = sorted(
            (
                line
                for line in lines
                if (line["target"], line.get("residue_name")) == (target, residue_name) and line.get("composite") is not None
            ),
            key=lambda line: -line["composite"],
        )
        for rank, line in enumerate(ranked, start=1):
            line["rank"] = rank
    return lines


def _write_scores(path: Path, scores: list[dict]) -> None:
    from io import StringIO

    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for line in scores:
        writer.writerow({k: _cell(line.get(k)) for k in SCORE_COLUMNS})
    write_text(path, buffer.getvalue())


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    return "" if value is None else value
