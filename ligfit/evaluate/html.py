"""The challenge report: one HTML page (density pictures as files beside it, Q-score plots embedded)."""

from __future__ import annotations

import datetime
from html import escape
from importlib import metadata

from ligfit import pictures
from ligfit.evaluate import composite

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:0.6em 0 1.4em}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right;font-size:13px}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.ligand{border-top:2px solid #ccc;padding-top:0.6em;margin-top:1.2em}
.bad{color:#b00} small{color:#666}
"""
_COLUMNS = [
    ("rank", "rank", 0), ("group", "group", None), ("ligand", "ligand", None), ("composite", "composite", 3), ("q_score", "Q", 2),
    ("cc_mask", "CC<sub>mask</sub>", 2), ("cc_box", "CC<sub>box</sub>", 2), ("rmsd", "RMSD Å", 2), ("lddt_pli", "LDDT-PLI", 2),
    ("pocket_ca_lddt", "pocket Cα lDDT", 2), ("contact_recovery", "contacts kept", 2), ("bond_rmsz", "bond RMSZ", 1),
    ("angle_rmsz", "angle RMSZ", 1), ("chirality_errors", "chirality", 0), ("clash_count", "clashes", 0),
]  # fmt: skip


def challenge_report(records: list[dict], scores: list[dict]) -> str:
    """HTML for a challenge: weights, a ranked table per target, a section per ligand, and the failures."""
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ligfit challenge report</title><style>{_STYLE}</style></head><body>",
        f"<h1>Ligand-model challenge</h1><p><small>ligfit {escape(metadata.version('ligfit'))}, {now}; {len(records)} submissions</small></p>",
        _weights_table(),
    ]
    by_row = {r["submission"]["row"]: r for r in records}
    for target in dict.fromkeys(line["target"] for line in scores):
        lines = sorted((s for s in scores if s["target"] == target and s["status"] == "ok"), key=lambda s: s.get("rank") or 10**9)
        parts.append(f"<h2>Target {escape(target)}</h2>")
        parts.append(_ranking_table(lines))
        for line in lines:
            parts.append(_ligand_section(by_row[line["row"]], line))
    failures = [r for r in records if r["status"] != "ok"]
    if failures:
        parts.append(
            "<h2>Rows that could not be evaluated</h2><table><tr><th>row</th><th class=l>target</th><th class=l>group</th><th>status</th><th class=l>reason</th></tr>"
        )
        for record in failures:
            s = record["submission"]
            parts.append(
                f"<tr><td>{s['row']}</td><td class=l>{escape(s['target'])}</td><td class=l>{escape(s['group'])}</td>"
                f"<td class=bad>{escape(record['status'])}</td><td class=l>{escape(record['error'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _weights_table() -> str:
    cells = "".join(f"<tr><td class=l>{escape(name)}</td><td>{weight:.2f}</td></tr>" for name, weight in composite.WEIGHTS.items())
    return (
        "<h3>Composite score</h3><p>Weighted mean of terms in [0, 1] (see <code>ligfit.evaluate.composite</code>); terms that "
        "cannot be computed (no reference, no ideal geometry) are left out and the weights rescaled.</p>"
        f"<table><tr><th class=l>term</th><th>weight</th></tr>{cells}</table>"
    )


def _ranking_table(lines: list[dict]) -> str:
    header = "".join(f"<th{' class=l' if digits is None else ''}>{title}</th>" for _, title, digits in _COLUMNS)
    rows = []
    for line in lines:
        anchor = _anchor(line)
        cells = []
        for key, _, digits in _COLUMNS:
            value = line.get(key)
            text = escape(str(value)) if digits is None else _number(value, digits)
            if key == "ligand":
                text = f"<a href='#{anchor}'>{text}</a>"
            cells.append(f"<td{' class=l' if digits is None else ''}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _ligand_section(record: dict, line: dict) -> str:
    evaluation = record["evaluation"]
    ligand = next(lig for lig in evaluation["ligands"] if lig["ligand"] == line["ligand"])
    picture = record.get("pictures", {}).get(ligand["ligand"])
    contacts = "".join(
        f"<li>{escape(c['type'])}: {escape(' '.join(c['ligand_atoms']))} – {escape(c['residue'])} {escape(' '.join(c['protein_atoms']))} ({c['distance']} Å)</li>"
        for c in ligand["contacts"]
    )
    clashes = "".join(f"<li>{escape(' – '.join(c['atoms']))}: {c['overlap']} Å</li>" for c in ligand["clashes"])
    reference = ligand.get("reference") or {}
    compared = f"reference {escape(reference['ligand'])}" if "ligand" in reference else escape(reference.get("status", "no reference"))
    terms = ", ".join(f"{k} {_number(v, 2)}" for k, v in ligand["composite_terms"].items())
    return (
        f"<div class=ligand id='{_anchor(line)}'><h3>{escape(line['group'] or 'model')} · {escape(ligand['ligand'])}</h3>"
        f"<p><small>{escape(record['submission']['model'])}; compared with {compared}; composite terms: {terms}</small></p>"
        + (f"<img src='{escape(picture)}' alt='density around {escape(ligand['ligand'])}'><br>" if picture else "")
        + "<small>The map's isosurface within 2.4 Å of the ligand, seen along its principal axes, at half the median density of "
        "the pocket's atoms; ligand atoms coloured by Q-score, pocket residues within 5 Å as thin sticks.</small><br>"
        + _q_chart(ligand["atom_names"], ligand["atom_q_scores"], evaluation["expected_q_score"])
        + f"<p>Contacts:</p><ul>{contacts or '<li>none</li>'}</ul><p>Serious clashes:</p><ul>{clashes or '<li>none</li>'}</ul></div>"
    )


def _q_chart(atom_names: list[str], atom_q: list[float | None], expected: float) -> str:
    chart = pictures.q_score_chart(atom_names, atom_q, expected)
    return f"<img src='{pictures.data_uri(chart)}' alt='per-atom Q-scores'>"


def _anchor(line: dict) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in f"r{line['row']}-{line['ligand']}")


def _number(value: object, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value == value else "–"
    return escape(str(value))
