"""``report.html`` of a build: one self-contained page (pictures embedded, no scripts, no links out).

It reads the build report (the dict of :func:`ligfit.report.build_report`) and the arrays the
pictures need: the verdict in one line, the ligand in its density from three directions, its 2D
depiction coloured by Q-score, the ranked blobs with their pictures, the top poses, refinement
before and after, timings, versions and the exact command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem

from ligfit import io, pictures, viewers
from ligfit.ligand import Ligand, given_mol
from ligfit.maps import DensityMap
from ligfit.measures import expected_q_score, q_scores
from ligfit.pictures import Sticks

MAX_PICTURED_PLACEMENTS = 4
MAX_PICTURED_BLOBS = 5
MAX_POSES = 10

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1.2em 1.6em;color:#222;max-width:1180px;line-height:1.4}
h1{font-size:1.5em;margin:0.2em 0} h2{font-size:1.2em;border-bottom:2px solid #ddd;padding-bottom:0.15em;margin-top:1.6em}
.verdict{font-size:1.15em;padding:0.6em 0.9em;border-radius:6px;margin:0.8em 0}
.found{background:#e6f4e6;border-left:6px solid #2e8b2e} .empty{background:#fbeaea;border-left:6px solid #b22}
.key{display:flex;flex-wrap:wrap;gap:0.6em 1.6em;margin:0.4em 0 0.8em;font-size:0.95em}
.key b{font-size:1.15em}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:13px}
th,td{padding:3px 9px;border-bottom:1px solid #e2e2e2;text-align:right;vertical-align:top}
th{background:#f4f4f4} .l{text-align:left}
img{max-width:100%;height:auto} .row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.blobs{display:flex;flex-wrap:wrap;gap:0.8em} .blobs figure{margin:0;text-align:center;font-size:12px}
figcaption,small,.note{color:#555;font-size:12.5px} pre{background:#f6f6f6;padding:0.6em;white-space:pre-wrap;word-break:break-all;font-size:12.5px}
"""


@dataclass(frozen=True)
class LigandScene:
    """One placed ligand with what its pictures need; coordinates in Å in the map frame."""

    label: str
    ligand: Sticks  # heavy atoms
    atom_names: list[str]
    atom_q: np.ndarray  # per heavy atom (NaN where undefined)
    mol: Chem.Mol | None  # 2D depiction: the molecule as given, heavy atoms in ``ligand``'s order
    pocket: Sticks | None


def ligand_scenes(
    density: DensityMap, ligand: Ligand, placements: Sequence[np.ndarray], model: gemmi.Structure | None, residue_name: str
) -> list[LigandScene]:
    """A scene per placement: heavy atoms, per-atom Q-scores (Pintilie et al. 2020) and the pocket of ``model``.

    ``placements``: all-atom coordinates in ligand order; ``model``: the protein (the ligand's own
    residues, named ``residue_name``, are left out of the pocket and of the Q-score neighbours).
    """
    heavy = ligand.heavy_atom_count
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ligand.mol.GetBonds() if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < heavy]
    protein = io.heavy_atoms(model) if model is not None else None
    if protein is not None:
        keep = protein.residue_name != residue_name
        protein_xyz = protein.coordinates[keep]
        protein_elements = protein.elements[keep]
        residue_ids = [f"{c}:{n}" for c, n in zip(protein.chain[keep], protein.residue_number[keep])]
    scenes = []
    for number, coordinates in enumerate(placements[:MAX_PICTURED_PLACEMENTS], start=1):
        xyz = np.asarray(coordinates, dtype=float)[:heavy]
        others = protein_xyz if protein is not None else np.zeros((0, 3))
        atom_q = q_scores(density, np.concatenate([xyz, others]), np.arange(heavy))
        pocket = pictures.pocket_sticks(protein_xyz, protein_elements, residue_ids, xyz) if protein is not None else None
        scenes.append(
            LigandScene(
                label=f"placement {number}",
                ligand=Sticks(xyz, ligand.elements[:heavy], bonds),
                atom_names=list(ligand.atom_names[:heavy]),
                atom_q=np.asarray(atom_q, dtype=float),
                mol=given_mol(ligand),
                pocket=pocket,
            )
        )
    return scenes


def build_report_html(
    report: dict,
    scenes: Sequence[LigandScene],
    density: DensityMap,
    difference: DensityMap | None = None,
    level: float | None = None,
    protein: io.AtomTable | None = None,
) -> str:
    """The page for a build: ``report`` from ``build_report``; ``difference`` in σ units and ``protein`` for the blob pictures."""
    name = report.get("ligand", {}).get("name", "ligand")
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>ligfit build: {escape(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>ligfit build — {escape(name)}</h1>",
        _verdict(report),
    ]
    expected = _expected_q(report)
    for scene in scenes:
        parts.append(_scene_section(scene, density, level, expected))
    parts.append(_blob_section(report, difference, protein))
    parts.append(_poses_section(report))
    parts.append(_refinement_section(report))
    parts.append(_templates_section(report))
    parts.append(_run_section(report))
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


def write_build_presentation(
    staging: str | os.PathLike,
    folder: str | os.PathLike,
    report: dict,
    density: DensityMap,
    difference: DensityMap | None,
    ligand: Ligand,
    placements: Sequence[np.ndarray],
    model: gemmi.Structure | None,
) -> None:
    """Write ``report.html`` and the viewer scripts into ``staging`` (the folder that becomes ``folder``)."""
    staging = Path(staging)
    residue_name = report.get("ligand", {}).get("name") or ligand.name
    scenes = ligand_scenes(density, ligand, placements, model, residue_name)
    level = pictures.contour_level(density, _pocket_reference(scenes))
    protein = io.heavy_atoms(model) if model is not None else None
    io.write_text(staging / "report.html", build_report_html(report, scenes, density, difference, level, protein))
    inputs = report.get("inputs") or {}
    if scenes:
        model_file, centre = "model.cif", viewers.ligand_centre(scenes[0].ligand.coordinates)
    else:  # nothing placed: the input model (if any), looking at the best blob
        model_file = _existing_path(inputs.get("model"))
        blobs = report.get("blobs") or []
        centre = tuple(blobs[0]["centroid"]) if blobs else tuple(np.round(density.origin + density.extent / 2, 3).tolist())
    scene = viewers.ViewerScene(
        model=model_file,
        ligand_name=residue_name,
        centre=centre,
        map_path=_existing_path(inputs.get("map")),
        map_level=round(level, 5),
        difference="difference.mrc" if difference is not None else None,
        difference_level=(report.get("options") or {}).get("threshold"),
        placed=bool(scenes),
    )
    viewers.write_viewer_scripts(staging, scene, final_folder=folder)


def _existing_path(source: object) -> str | None:
    """The absolute path of an input given as a file (None for inputs given in memory)."""
    if not isinstance(source, str) or not source:
        return None
    path = Path(source)
    return str(path.resolve()) if path.is_file() else None


def _pocket_reference(scenes: Sequence[LigandScene]) -> np.ndarray | None:
    pockets = [s.pocket.coordinates for s in scenes if s.pocket is not None]
    return np.concatenate(pockets) if pockets else None


# --------------------------------------------------------------------------- sections


def _verdict(report: dict) -> str:
    found = report.get("status") == "found"
    best = report.get("best_pose") or {}
    fit = (report.get("ligand_fit") or [{}])[0]
    if found:
        line = (
            f"<b>Placed</b> — confidence <b>{_num(report.get('confidence'), 2)}</b> ({escape(str(report.get('confidence_label')))}): "
            f"{escape(str(report.get('message')))}"
        )
        if report.get("confidence_meaning"):
            line += f"<br><small>What “{escape(str(report.get('confidence_label')))}” has meant: {escape(report['confidence_meaning'])}.</small>"
    else:
        line = f"<b>Not placed</b> — {escape(str(report.get('message')))}"
    key = []
    if found:
        key += [
            f"<span>map CC <b>{_num(best.get('cc'), 2)}</b></span>",
            f"<span>Q-score <b>{_num(fit.get('q_score'), 2)}</b> (expected {_num(fit.get('expected_q_score'), 2)})</span>",
            f"<span>atoms in density <b>{_percent(best.get('fraction_in_density'))}</b></span>",
            f"<span>clashes <b>{_num(best.get('clashes'), 0)}</b></span>",
            f"<span>strain <b>{_num(best.get('strain_kcal_mol'), 1)}</b> kcal/mol</span>",
            f"<span>blob <b>{_num(_blob_number(best.get('blob')), 0)}</b></span>",
            f"<span>found by {escape(str(best.get('found_by', '–')))}</span>",
        ]
    ligand = report.get("ligand") or {}
    chemistry = ""
    if ligand.get("given_smiles") and ligand.get("given_smiles") != ligand.get("used_smiles"):
        chemistry = (
            f"<p class=note>Output files carry the ligand as given (<code>{escape(ligand['given_smiles'])}</code>); it was scored and "
            f"refined as <code>{escape(str(ligand.get('used_smiles')))}</code> (charge {ligand.get('used_charge')}), written to "
            "<code>ligand_protonated.sdf</code>.</p>"
        )
    return (
        f"<div class='verdict {'found' if found else 'empty'}'>{line}</div><div class=key>{''.join(key)}</div>"
        f"<p class=note>Ligand <code>{escape(str(ligand.get('given_smiles') or ligand.get('smiles', '')))}</code>, "
        f"{ligand.get('heavy_atoms', '–')} heavy atoms, {ligand.get('rotatable_bonds', '–')} rotatable bonds; map "
        f"{escape(str((report.get('inputs') or {}).get('map')))} at {_num((report.get('inputs') or {}).get('resolution_A'), 2)} Å.</p>"
        + chemistry
    )


def _scene_section(scene: LigandScene, density: DensityMap, level: float | None, expected: float | None) -> str:
    views = pictures.density_views(density, scene.ligand, level=level, pocket=scene.pocket, atom_q=scene.atom_q)
    parts = [
        f"<h2>The ligand in its density ({escape(scene.label)})</h2>",
        f"<img src='{_data_uri(views)}' alt='the ligand in its density, three views'>",
        "<p class=note>The map's isosurface within 2.4 Å of the ligand at the contour where the pocket's own atoms read clearly "
        "(half their median density), seen along the ligand's principal axes; ligand atoms coloured by Q-score, pocket residues "
        "within 5 Å as thin sticks.</p>",
    ]
    finite = np.isfinite(scene.atom_q)
    mean_q = f"{np.nanmean(scene.atom_q):.2f}" if finite.any() else "–"
    row = []
    if scene.mol is not None:
        depiction = pictures.ligand_2d(scene.mol, [None if not np.isfinite(v) else float(v) for v in scene.atom_q])
        row.append(
            f"<figure style='margin:0'><img src='{_data_uri(depiction)}' alt='2D depiction coloured by Q-score'><figcaption>As given, atoms coloured and labelled by Q-score (mean {mean_q}).</figcaption></figure>"
        )
    chart = pictures.q_score_chart(scene.atom_names, [float(v) if np.isfinite(v) else None for v in scene.atom_q], expected)
    row.append(
        f"<figure style='margin:0'><img src='{_data_uri(chart)}' alt='per-atom Q-scores'><figcaption>Per-atom Q-score; dashed: expected at this resolution.</figcaption></figure>"
    )
    parts.append(f"<div class=row>{''.join(row)}</div>")
    return "\n".join(parts)


#: What ligfit built into a given model to explain density, as report.html names it: (inputs key, list field, words).
_BUILT_TO_EXPLAIN = (
    ("missing_loops", "built", "Loops the model leaves out and the map holds, built (backbone and Cβ)"),
    ("truncated_side_chains", "residues", "Side chains the model cuts short at Cβ, completed into the map"),
    ("truncated_side_chains", "loop_side_chains", "Side chains of the built loops (named by the model's sequence), completed into the map"),
)


def _built_notes(report: dict) -> str:
    """What ``ligfit.trace.loops`` and ``ligfit.trace.truncated`` built to explain density (nothing when they built nothing)."""
    inputs = report.get("inputs") or {}
    notes = []
    for key, listed, words in _BUILT_TO_EXPLAIN:
        names = (inputs.get(key) or {}).get(listed) or []
        if names:
            notes.append(
                f"<p class=note>{words} and subtracted with the model so that their density is not taken for a ligand; "
                f"not written to the model: {escape(', '.join(names))}.</p>"
            )
    return "".join(notes)


def _blob_section(report: dict, difference: DensityMap | None, protein: io.AtomTable | None) -> str:
    blobs = report.get("blobs") or []
    if not blobs:
        return f"<h2>Unexplained density</h2><p>No blob above the threshold.</p>{_built_notes(report)}"
    threshold = (report.get("options") or {}).get("threshold", 3.0)
    columns = [
        ("rank", "blob", 0), ("peak_sigma", "peak σ", 1), ("mean_sigma", "mean σ", 1), ("volume_A3", "volume Å³", 0),
        ("estimated_heavy_atoms", "≈ heavy atoms", 0), ("ligand_match", "shape match", 2), ("protein_distance_A", "to protein Å", 1),
        ("protein_contacts", "protein contacts", 0),
    ]  # fmt: skip
    blobs = [{**blob, "rank": _blob_number(blob.get("rank"))} for blob in blobs]
    table = _table(blobs, columns)
    figures = []
    if difference is not None:
        for blob in blobs[:MAX_PICTURED_BLOBS]:
            centre = np.asarray(blob["centroid"], dtype=float)
            radius = float(np.clip(1.8 * (3 * blob["volume_A3"] / (4 * np.pi)) ** (1 / 3) + 2.5, 5.0, 10.0))
            near = None
            if protein is not None and len(protein):
                residue_ids = [f"{c}:{n}" for c, n in zip(protein.chain, protein.residue_number)]
                near = pictures.pocket_sticks(protein.coordinates, protein.elements, residue_ids, centre[None], radius=radius - 1.0)
            png = pictures.blob_view(difference, centre, threshold, radius=radius, pocket=near, title=f"blob {blob['rank']}")
            figures.append(
                f"<figure><img src='{_data_uri(png)}' alt='blob {blob['rank']}'><figcaption>{_num(blob['peak_sigma'], 1)} σ peak, "
                f"{_num(blob['volume_A3'], 0)} Å³</figcaption></figure>"
            )
    return (
        f"<h2>Unexplained density (blobs of the difference map above {_num(threshold, 1)} σ)</h2>{_built_notes(report)}{table}"
        + (f"<div class=blobs>{''.join(figures)}</div><p class=note>Difference map (map minus the model's simulated density) at "
           f"{_num(threshold, 1)} σ within the blob; nearby model atoms in grey.</p>" if figures else "")
    )  # fmt: skip


def _poses_section(report: dict) -> str:
    poses = report.get("poses") or []
    if not poses:
        return ""
    rows = [{"#": index + 1, **pose, "blob": _blob_number(pose.get("blob"))} for index, pose in enumerate(poses[:MAX_POSES])]
    columns = [
        ("#", "#", 0), ("blob", "blob", 0), ("score", "score", 3), ("cc", "CC", 3), ("fraction_in_density", "in density", 2),
        ("mean_sigma", "mean σ", 1), ("clashes", "clashes", 0), ("polar_contacts", "polar contacts", 0),
        ("packing", "packing", 1), ("interaction", "Vina-like / atom", 2), ("strain_kcal_mol", "strain kcal/mol", 1), ("found_by", "found by", None),
    ]  # fmt: skip
    return f"<h2>Top poses</h2>{_table(rows, columns)}<p class=note>All poses are in <code>poses.sdf</code>, best first.</p>"


def _refinement_section(report: dict) -> str:
    refinements = report.get("refinement") or []
    if not refinements:
        refined = (report.get("options") or {}).get("refine")
        return "<h2>Refinement</h2><p>" + ("No placement to refine." if refined else "Not run (--no-refine).") + "</p>"
    parts = ["<h2>Refinement (before → after)</h2>"]
    for number, refinement in enumerate(refinements, start=1):
        before, after = refinement.get("before") or {}, refinement.get("after") or {}
        keys = [k for k in dict.fromkeys([*before, *after]) if not isinstance(before.get(k, after.get(k)), (dict, list))]
        rows = "".join(
            f"<tr><td class=l>{escape(k.replace('_', ' '))}</td><td>{_num(before.get(k), 3)}</td><td>{_num(after.get(k), 3)}</td></tr>"
            for k in keys
        )
        parts.append(
            f"<p>Placement {number}: {escape(str(refinement.get('message')))} ({_num(refinement.get('seconds'), 0)} s, ligand force field "
            f"{escape(str(refinement.get('ligand_force_field')))}, {refinement.get('mobile_residues', '–')} mobile residues).</p>"
            f"<table><tr><th class=l>measure</th><th>before</th><th>after</th></tr>{rows}</table>"
        )
    return "\n".join(parts)


def _templates_section(report: dict) -> str:
    templates = report.get("templates") or {}
    matches = templates.get("matches") or []
    if not matches:
        return ""
    columns = [
        ("template", "template", None), ("blob", "blob", 0), ("score", "score", 3), ("tanimoto", "Tanimoto", 2),
        ("common_atoms", "common atoms", 0), ("pocket_identity", "pocket identity", 2), ("pocket_rmsd_A", "pocket RMSD Å", 2),
    ]  # fmt: skip
    matches = [{**match, "blob": _blob_number(match.get("blob"))} for match in matches[:8]]
    return f"<h2>Template complexes that seeded docking</h2>{_table(matches, columns)}"


def _run_section(report: dict) -> str:
    timings = report.get("timings_s") or {}
    total = sum(v for v in timings.values() if isinstance(v, (int, float)))
    timing_rows = "".join(f"<tr><td class=l>{escape(k)}</td><td>{_num(v, 1)}</td></tr>" for k, v in timings.items())
    versions = " · ".join(f"{escape(k)} {escape(str(v))}" for k, v in (report.get("versions") or {}).items())
    command = report.get("command") or "(called from Python; no command line)"
    inputs = report.get("inputs") or {}
    input_rows = "".join(
        f"<tr><td class=l>{escape(k)}</td><td class=l>{escape(str(v))}</td></tr>" for k, v in inputs.items() if not isinstance(v, dict)
    )
    return (
        f"<h2>Run</h2><div class=row><div><table><tr><th class=l>stage</th><th>seconds</th></tr>{timing_rows}"
        f"<tr><td class=l><b>total</b></td><td><b>{total:.1f}</b></td></tr></table></div>"
        f"<div><table><tr><th class=l>input</th><th class=l>value</th></tr>{input_rows}</table></div></div>"
        f"<p><b>Command</b></p><pre>{escape(command)}</pre><p><b>Versions</b>: <small>{versions}</small></p>"
        "<p class=note>Open the result in a viewer: <code>chimerax open_in_chimerax.cxc</code> or "
        "<code>coot --script open_in_coot.py</code> in this folder. Everything on this page is also in <code>report.json</code>.</p>"
    )


# --------------------------------------------------------------------------- helpers


def _expected_q(report: dict) -> float | None:
    fit = report.get("ligand_fit") or []
    if fit and fit[0].get("expected_q_score") is not None:
        return float(fit[0]["expected_q_score"])
    resolution = (report.get("inputs") or {}).get("resolution_A")
    return None if resolution is None else round(expected_q_score(float(resolution)), 3)


def _blob_number(rank: object) -> object:
    """The blob as the messages name it: report.json ranks blobs from 0 (the best match), the page from 1."""
    return rank + 1 if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool) else rank


def _table(rows: Sequence[dict], columns: Sequence[tuple[str, str, int | None]]) -> str:
    header = "".join(f"<th{' class=l' if digits is None else ''}>{escape(title)}</th>" for _, title, digits in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=l' if digits is None else ''}>{escape(str(row.get(key, '–'))) if digits is None else _num(row.get(key), digits)}</td>"
            for key, _, digits in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _num(value: object, digits: int) -> str:
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value).lower()
    if isinstance(value, (int, float, np.number)):
        value = float(value)
        if not np.isfinite(value):
            return "–"
        return f"{value:.{digits}f}"
    return escape(str(value))


def _percent(value: object) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{100 * value:.0f}%"


_data_uri = pictures.data_uri
