"""A real Orthanc with the DICOMweb plugin on 127.0.0.1, started once for the PACS tests.

Orthanc runs with its own storage in a temporary folder, HTTP basic authentication on (so that
Sahay's credentials are exercised) and remote access off. It is seeded through its own REST API,
not through Sahay, so that the query and pull tests do not rely on the code they test.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from sahay.config import Settings, reload_settings
from tests.factories import chest_phantom, write_dicom
from tests.system import missing

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USERNAME = "sahay"
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Orthanc:
    base_url: str
    """Orthanc's own REST API, e.g. http://127.0.0.1:8042."""
    username: str
    password: str

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def upload(self, path: Path) -> None:
        """Store a file through Orthanc's REST API (not DICOMweb, not Sahay)."""
        response = requests.post(
            f"{self.base_url}/instances",
            data=path.read_bytes(),
            auth=(self.username, self.password),
            timeout=30,
        )
        response.raise_for_status()


@dataclass(frozen=True)
class SeededStudy:
    """The chest study stored before the tests: two CR instances in one series."""

    study_uid: str
    series_uid: str
    files: dict[str, Path]
    """SOPInstanceUID -> the file that was uploaded."""
    patient_id: str = "PACS-001"
    patient_name: str = "Pacs^Test"
    study_date: str = "20240102"


@dataclass(frozen=True)
class SeededCT:
    """pydicom's CT_small.dcm, a study of its own."""

    study_uid: str
    series_uid: str
    sop_uid: str
    path: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], url: str, auth: tuple[str, str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/system", auth=auth, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not ORTHANC.is_file() or not DICOMWEB_PLUGIN.is_file():
        missing("Orthanc with its DICOMweb plugin (Debian packages orthanc and orthanc-dicomweb)")
    folder = tmp_path_factory.mktemp("orthanc")
    password = secrets.token_urlsafe(16)
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "sahay-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: password},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
    }
    config_file = folder / "orthanc.json"
    config_file.write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [str(ORTHANC), str(config_file)], stdout=log_handle, stderr=subprocess.STDOUT, cwd=folder
        )
    server = Orthanc(f"http://127.0.0.1:{http_port}", USERNAME, password)
    try:
        _wait_until_up(process, server.base_url, (USERNAME, password), log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder / "storage", ignore_errors=True)


@pytest.fixture(scope="session")
def seeded_study(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> SeededStudy:
    folder = tmp_path_factory.mktemp("seed")
    study_uid, series_uid = generate_uid(), generate_uid()
    files: dict[str, Path] = {}
    for number, seed in enumerate((1, 2), start=1):
        pixels = np.round(chest_phantom(256, 224, seed=seed).pixels * 4000).astype(np.uint16)
        path = write_dicom(
            folder / f"chest-{number}.dcm",
            pixels,
            bits_stored=12,
            patient_id=SeededStudy.patient_id,
            patient_name=SeededStudy.patient_name,
        )
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.InstanceNumber = number
        ds.StudyDescription = "Chest phantom"
        ds.save_as(path, enforce_file_format=True)
        orthanc.upload(path)
        files[str(ds.SOPInstanceUID)] = path
    return SeededStudy(study_uid, series_uid, files)


@pytest.fixture(scope="session")
def seeded_ct(orthanc: Orthanc) -> SeededCT:
    path = Path(get_testdata_file("CT_small.dcm", download=False))
    orthanc.upload(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return SeededCT(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), path)


@pytest.fixture
def pacs_settings(orthanc: Orthanc, sahay_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """SAHAY_PACS_* pointing at the test Orthanc, as an administrator would set them."""
    monkeypatch.setenv("SAHAY_PACS_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("SAHAY_PACS_USERNAME", orthanc.username)
    monkeypatch.setenv("SAHAY_PACS_PASSWORD", orthanc.password)
    monkeypatch.setenv("SAHAY_PACS_TIMEOUT_S", "30")
    return reload_settings()
