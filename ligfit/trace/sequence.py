"""Sequences for threading: FASTA files, one-letter strings, or lists of them, checked and cleaned."""

from __future__ import annotations

import os
from pathlib import Path

from ligfit.backbone.net import ONE_LETTER
from ligfit.errors import LigfitError
from ligfit.trace.records import SequenceInput


def read_sequences(sequence: SequenceInput) -> list[str]:
    """One-letter sequences from a FASTA path, a sequence string, or a list of either."""
    if isinstance(sequence, list):
        return [s for item in sequence for s in read_sequences(item)]
    text = str(sequence)
    path = Path(text)
    if isinstance(sequence, os.PathLike) or (len(text) < 4096 and ("/" in text or "." in text) and path.exists()):
        if not path.is_file():
            raise LigfitError(f"{path}: no such sequence file; check the path")
        records, current = [], []
        for line in path.read_text().splitlines():
            if line.startswith(">"):
                if current:
                    records.append("".join(current))
                current = []
            elif line.strip():
                current.append(line.strip())
        if current:
            records.append("".join(current))
        if not records:
            raise LigfitError(f"{path}: no sequence found; give a FASTA file with one record per chain")
        return [_clean(r, str(path)) for r in records]
    return [_clean(text, "the sequence")]


def _clean(sequence: str, source: str) -> str:
    cleaned = "".join(sequence.split()).upper().rstrip("*")
    bad = sorted(set(cleaned) - set(ONE_LETTER) - {"X"})
    if not cleaned or bad:
        raise LigfitError(
            f"{source}: not a protein sequence (unexpected letters {''.join(bad) or 'none found'}); give one-letter amino-acid codes"
        )
    return cleaned
