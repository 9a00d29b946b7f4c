"""``ranking.html`` of a screen: one self-contained page (pictures embedded, no scripts, no links out).

The verdict in one line, the ranking table, and for each top hit with a pose its 2D depiction
and the pose in the difference map from three directions (pictures from :mod:`ligfit.pictures`,
the style of a build's ``report.html``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np
from rdkit import Chem

from ligfit import pictures
from ligfit.maps import DensityMap
from ligfit.pictures import Sticks
from ligfit.report_html import STYLE
from ligfit.screen.ranking import STRAIN_CHARGE, confidence_meaning

#: hits pictured on the page (each picture costs about a second)
MAX_PICTURED_HITS = 6
#: rows of the ranking table on the page (ranking.csv holds them all)
MAX_TABLE_ROWS = 50

_COLUMNS = (
    ("rank", "#", None),
    ("name", "ligand", None),
    ("status", "status", None),
    ("fit_score", "fit score", 3),
    ("rank_score", "rank score", 3),
    ("confidence", "confidence", 2),
    ("group", "analog group", None),
    ("blob", "blob", None),
    ("blob_cc", "blob CC", 3),
    ("explained", "explained", 2),
    ("q_score", "Q", 2),
    ("pose_gap", "pose gap", 2),
    ("heavy_atoms", "heavy atoms", None),
    ("blob_heavy_atoms", "blob ~atoms", None),
    ("strain_kcal_mol", "strain", 1),
    ("clashes", "clashes", None),
    ("time_s", "time (s)", 1),
    ("note", "note", None),
)


def _meaning(rows: Sequence[dict]) -> list[str]:
    """A line on what the best hit's confidence has meant on the benchmark, when there is a hit."""
    best = next((row for row in rows if row.get("hit")), None)
    meaning = confidence_meaning(best.get("confidence")) if best is not None else None
    return [f"<p class=note>Confidence {best['confidence']:.2f}: {escape(meaning)}.</p>"] if meaning else []


def build_ranking_html(
    rows: Sequence[dict],
    verdict: str,
    *,
    title: str = "ligfit screen",
    difference: DensityMap | None = None,
    protein_xyz: np.ndarray | None = None,
    protein_elements: Sequence[str] | None = None,
    pictured: int = MAX_PICTURED_HITS,
) -> str:
    """The page: ``rows`` ranked best first (``rank_rows``), ``difference`` in σ units for the pose pictures."""
    found = any(row.get("hit") for row in rows)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<div class='verdict {'found' if found else 'empty'}'>{escape(verdict)}</div>",
        *_meaning(rows),
        f"<p class=note>{len(rows)} ligand(s); {sum(1 for r in rows if r.get('hit'))} hit(s). "
        "Fit score = blob CC · √explained · min(1, Q / expected Q): comparable across ligand sizes. "
        f"Rank score = fit score − {STRAIN_CHARGE} per kcal/mol of the pose's strain: what the ranking orders skeletons by. "
        "Pose gap: how far the pose's docking score is ahead of the best different pose (over 2 Å away) in its blob; "
        "near 0, the density takes the ligand about as well another way; blank, docking kept no different pose there.</p>",
    ]
    top = [row for row in rows if row.get("pose")][:pictured]
    if top:
        parts.append("<h2>Top hits</h2>")
    for row in top:
        parts.append(_hit_section(row, difference, protein_xyz, protein_elements))
    parts.append("<h2>Ranking</h2>")
    parts.append(_table(rows[:MAX_TABLE_ROWS]))
    if len(rows) > MAX_TABLE_ROWS:
        parts.append(f"<p class=note>… {len(rows) - MAX_TABLE_ROWS} more in ranking.csv</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _hit_section(row: dict, difference: DensityMap | None, protein_xyz: np.ndarray | None, protein_elements: Sequence[str] | None) -> str:
    pose = row["pose"]
    name = escape(str(row["name"]))
    head = (
        f"<h3 id='hit{row['rank']}'>#{row['rank']} {name}{' — hit' if row.get('hit') else ''}</h3>"
        f"<div class=key><span>fit score <b>{_num(row.get('fit_score'), 3)}</b></span>"
        f"<span>confidence <b>{_num(row.get('confidence'), 2)}</b></span><span>blob <b>{row.get('blob')}</b></span>"
        f"<span>blob CC <b>{_num(row.get('blob_cc'), 3)}</b></span><span>explained <b>{_num(row.get('explained'), 2)}</b></span>"
        f"<span>Q <b>{_num(row.get('q_score'), 2)}</b></span></div>"
    )
    images = []
    mol = Chem.MolFromMolBlock(pose.get("molblock") or "", sanitize=False) if pose.get("molblock") else None
    if mol is not None:
        try:
            images.append(f"<img alt='2D depiction of {name}' src='{pictures.data_uri(pictures.ligand_2d(mol, size=(320, 240)))}'>")
        except Exception:  # a depiction that RDKit cannot lay out is left out, not fatal
            pass
    if difference is not None:
        xyz = np.asarray(pose["coordinates"], dtype=float)
        bonds = (
            [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
            if mol is not None
            else pictures.guess_bonds(xyz, pose["elements"])
        )
        ligand = Sticks(xyz, pose["elements"], bonds)
        pocket = None
        if protein_xyz is not None and len(protein_xyz):
            ids = np.arange(len(protein_xyz))  # no residue labels in the screen context: atoms near the ligand only
            pocket = pictures.pocket_sticks(protein_xyz, list(protein_elements or []), ids, xyz)
        level = max(float(difference.values.std()) * 3.0, 1e-6) if difference.values.std() > 0 else 1.0
        picture = pictures.density_views(
            difference, ligand, level=level, pocket=pocket, title=f"{row['name']} in the difference map", panel_inches=2.6, dpi=90
        )
        images.append(f"<img alt='{name} in its density' src='{pictures.data_uri(picture)}'>")
    return head + "<div class=row>" + "".join(images) + "</div>"


def _table(rows: Sequence[dict]) -> str:
    head = "".join(f"<th{' class=l' if key in ('name', 'note', 'status') else ''}>{escape(label)}</th>" for key, label, _ in _COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key, _, digits in _COLUMNS:
            value = row.get(key)
            text = _num(value, digits) if digits is not None else ("" if value is None else str(value))
            if key == "name" and row.get("pose") and row.get("rank") is not None:
                text = f"<a href='#hit{row['rank']}'>{escape(text)}</a>"
            else:
                text = escape(text)
            cells.append(f"<td{' class=l' if key in ('name', 'note', 'status') else ''}>{text}</td>")
        style = " style='background:#eef8ee'" if row.get("hit") else ""
        body.append(f"<tr{style}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _num(value: object, digits: int) -> str:
    if value is None or value == "":
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)
