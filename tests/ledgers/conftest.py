"""The ledger tests walk a whole term on a clock set in the future: they sign with a copy of the
session's PKI, so the CRLs and certificates they date in that future never reach the PKI that later
tests, at today's date, trust (a CRL dated ahead is "too recent" to them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.container import Services
from service.documents.convert import Converter
from service.pki.store import Pki
from service.settings import Settings
from tests.conftest import built_services


@pytest.fixture()
def services(
    tmp_path: Path, settings: Settings, pki: Pki, converter: Converter, database_url: str
) -> Iterator[Services]:
    own = settings.model_copy(update={"certs_dir": tmp_path / "certs"})
    shutil.copytree(pki.dir, own.certs_dir)
    with built_services(tmp_path, own, converter, database_url) as built:
        yield built
