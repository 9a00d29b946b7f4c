"""The one loader for shipped weights and tables: the file must match the sha256 its record names.

Every trained artefact ships as a tensor (or array) file plus a JSON record holding its sha256;
:func:`check_sha256` refuses a file that is missing or differs, :func:`load_checked` then loads
a torch state dict safely (``weights_only=True``, on the CPU) and :func:`load_state` puts it
into a model strictly, so weights for another architecture never load silently.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ligfit.backbone.errors import BadWeightsError


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_sha256(path: str | os.PathLike, expected: str, record: str, fix: str = "reinstall") -> None:
    """Raise ``BadWeightsError`` when ``path`` is missing or its sha256 is not ``expected`` (named in ``record``)."""
    path = Path(path)
    if not path.is_file():
        raise BadWeightsError(f"{path}: the file named in {record} is missing; {fix}")
    digest = sha256(path)
    if digest != expected:
        raise BadWeightsError(f"{path}: sha256 {digest[:12]}… does not match {expected[:12]}… in {record}; {fix}")


def load_checked(path: str | os.PathLike, expected: str, record: str, fix: str = "reinstall") -> dict[str, torch.Tensor]:
    """The torch state dict in ``path`` after :func:`check_sha256`, loaded with ``weights_only=True`` onto the CPU."""
    check_sha256(path, expected, record, fix)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(model: torch.nn.Module, path: str | os.PathLike, expected: str, record: str, fix: str = "reinstall") -> torch.nn.Module:
    """``model`` with the checked state dict in ``path`` loaded strictly, in eval mode."""
    model.load_state_dict(load_checked(path, expected, record, fix), strict=True)
    return model.eval()
