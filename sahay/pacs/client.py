"""The hospital archive (PACS) through DICOMweb: search (QIDO-RS), pull (WADO-RS), push (STOW-RS).

The workflow that pulls, analyses and pushes back is ``sahay.services.pacs``.

The archive's address and login come from settings (``SAHAY_PACS_URL``, ``SAHAY_PACS_USERNAME``,
``SAHAY_PACS_PASSWORD``), which an administrator sets. Nothing here takes a URL from a user, so
no user can make Sahay (or the web service) send requests to a server of their choosing.

Example:
    >>> archive = Archive.from_settings()                                    # doctest: +SKIP
    >>> studies = archive.search_studies(patient="12345", study_date="20240101-20241231")  # doctest: +SKIP
    >>> archive.retrieve(studies[0].study_uid, dest=Path("study"))           # doctest: +SKIP
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from pydantic import BaseModel, Field
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from sahay.config import Settings, get_settings
from sahay.errors import ArchiveUnavailable, BadInput, UnsupportedFormat
from sahay.fileio import atomic_write_bytes
from sahay.imaging.reader import read_dicom_dataset

if TYPE_CHECKING:
    from dicomweb_client import DICOMwebClient

DEFAULT_LIMIT = 25
DEFAULT_PULL_ROOT = Path("sahay-pacs")
"""Inside each instance's analysis folder: copies of the SR and Secondary Captures that were pushed."""
MAX_LIMIT = 1000
RETRY_ATTEMPTS = 3
RETRY_WAIT_MS = 250
"""Retries wait 0.5 s, then 1 s: enough for a busy archive's 503, short for one that is down."""
STORE_BATCH_FILES = 50
STORE_BATCH_BYTES = 64 * 1024 * 1024
"""One STOW-RS request carries at most this many files or bytes, so memory stays bounded."""

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DICOM_DATE = re.compile(r"^(?:(\d{8})|(\d{8})?-(\d{8})?)$")
_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")

_STUDY_FIELDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "PatientID",
    "PatientName",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
_SERIES_FIELDS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)

# STOW-RS failure reasons (DICOM PS3.18 table I.2-1) in words.
_FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0x0111: "duplicate SOP instance",
}


class StudySummary(BaseModel):
    """One study as the archive describes it in a QIDO-RS search."""

    study_uid: str
    date: str | None = None
    time: str | None = None
    description: str | None = None
    accession_number: str | None = None
    modalities: list[str] = Field(default_factory=list)
    patient_id: str | None = None
    patient_name: str | None = None
    series: int | None = None
    instances: int | None = None


class SeriesSummary(BaseModel):
    """One series of a study."""

    series_uid: str
    modality: str | None = None
    number: int | None = None
    description: str | None = None
    instances: int | None = None


class StoreFailure(BaseModel):
    sop_instance_uid: str | None
    reason: str


class StoreResult(BaseModel):
    """What a STOW-RS push did: the instances stored, those refused, and files that were not DICOM."""

    stored: list[str] = Field(default_factory=list, description="SOPInstanceUIDs the archive accepted")
    failed: list[StoreFailure] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="files passed over, with the reason")

    @property
    def ok(self) -> bool:
        return not self.failed


class _WildcardSession(requests.Session):
    """Sends the DICOM wildcards ``*`` and ``?`` in query strings unencoded.

    dicomweb-client percent-encodes them (``Doe%2A``), which is correct, yet some archives match
    the encoded text literally (Orthanc 1.10, as packaged in Debian 12), so ``Doe*`` would find
    nothing. RFC 3986 allows both characters in a query, so every server reads them the same.
    """

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if "?" in url:
            base, _, query = url.partition("?")
            query = re.sub("%2[aA]", "*", re.sub("%3[fF]", "?", query))
            url = f"{base}?{query}"
        return super().request(method, url, *args, **kwargs)


class Archive:
    """A DICOMweb archive: search studies, retrieve a study or series, store instances.

    Errors become ``ArchiveUnavailable`` (cannot reach, refused login, server failure) or
    ``BadInput`` (a bad filter, an unknown study), with messages that never hold the password.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        from dicomweb_client import DICOMwebClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(
                f"SAHAY_PACS_URL must be an http or https address of the archive's DICOMweb root, "
                f"not {_without_credentials(url)!r}"
            )
        self.url = url.rstrip("/")
        self.display_url = _without_credentials(self.url)
        self.timeout_s = timeout_s
        session = _WildcardSession()
        if username is not None:
            session.auth = (username, password or "")
        try:
            self.client: DICOMwebClient = DICOMwebClient(self.url, session=session, timeout=timeout_s)
        except ValueError as exc:  # dicomweb-client's own URL check
            raise BadInput(f"SAHAY_PACS_URL {self.display_url!r} is not a usable DICOMweb address") from exc
        # dicomweb-client retries five times over 30 s by default, on every error: a user at the
        # command line would wait that long to learn that the archive is down. Retry briefly.
        self.client.set_http_retry_params(
            retry=True, max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=RETRY_WAIT_MS
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Archive:
        """The archive the administrator configured; ``BadInput`` when there is none."""
        settings = settings or get_settings()
        if not settings.pacs_url:
            raise BadInput(
                "no archive configured: set SAHAY_PACS_URL to the archive's DICOMweb root "
                "(e.g. http://pacs:8042/dicom-web), and SAHAY_PACS_USERNAME and SAHAY_PACS_PASSWORD "
                "if it asks for a login"
            )
        return cls(
            settings.pacs_url,
            username=settings.pacs_username,
            password=settings.pacs_password,
            timeout_s=settings.pacs_timeout_s,
        )

    def search_studies(
        self,
        *,
        patient: str | None = None,
        study_date: str | None = None,
        modality: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[StudySummary]:
        """Studies that match every filter given, newest first.

        ``patient`` matches PatientID or PatientName (``*`` and ``?`` are wildcards; names
        are ``Family^Given``). ``study_date`` is a DICOM date or range: ``20240102``,
        ``20240101-20241231``, ``20240101-`` or ``-20241231``. ``modality`` is e.g. ``CR``.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        filters: dict[str, str] = {}
        if study_date is not None:
            filters["StudyDate"] = check_study_date(study_date)
        if modality is not None:
            filters["ModalitiesInStudy"] = check_modality(modality)
        # QIDO-RS has no "or": ask by ID and by name, and merge the answers.
        patient_keys = ("PatientID", "PatientName") if patient is not None else (None,)
        value = check_patient(patient) if patient is not None else None
        found: dict[str, StudySummary] = {}
        for key in patient_keys:
            query = filters | ({key: value} if key and value else {})
            with self._errors("searching for studies"):
                answers = self.client.search_for_studies(
                    search_filters=query, fields=list(_STUDY_FIELDS), limit=limit
                )
            for answer in answers:
                study = _study_summary(_from_json(answer))
                if study is not None:
                    found.setdefault(study.study_uid, study)
        newest_first = sorted(found.values(), key=lambda s: (s.date or "", s.time or ""), reverse=True)
        return newest_first[:limit]

    def search_series(self, study_uid: str) -> list[SeriesSummary]:
        """The series of one study, in series-number order."""
        check_uid(study_uid, "study UID")
        with self._errors(f"listing the series of study {study_uid}", missing=f"study {study_uid}"):
            answers = self.client.search_for_series(study_instance_uid=study_uid, fields=list(_SERIES_FIELDS))
        series = [s for s in (_series_summary(_from_json(a)) for a in answers) if s is not None]
        return sorted(series, key=lambda s: (s.number is None, s.number or 0, s.series_uid))

    def retrieve(self, study_uid: str, series_uid: str | None = None, *, dest: Path) -> list[Path]:
        """Download a study (or one of its series) into ``dest``, one ``<SOPInstanceUID>.dcm`` each.

        Each file is written whole or not at all (a temporary file, then a rename), so an
        interrupted pull leaves only complete instances behind. Returns the files written.
        """
        check_uid(study_uid, "study UID")
        if series_uid is not None:
            check_uid(series_uid, "series UID")
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot write to {dest} ({exc.strerror or exc})") from exc
        what = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        written: list[Path] = []
        with self._errors(f"retrieving {what}", missing=what):
            instances = (
                self.client.iter_series(study_uid, series_uid)
                if series_uid
                else self.client.iter_study(study_uid)
            )
            for dataset in instances:
                written.append(self._write_instance(dataset, dest))
        if not written:
            raise BadInput(f"{what} has no instances in the archive at {self.display_url}")
        return written

    def store(self, items: Iterable[Path | Dataset]) -> StoreResult:
        """Send DICOM files, folders (searched recursively) or datasets to the archive.

        Files in a folder that are not DICOM are skipped and listed; a file named explicitly that
        is not DICOM is refused before anything is sent.
        """
        result = StoreResult()
        batch: list[Dataset] = []
        batch_bytes = 0
        for item in _instances(list(items), result.skipped):
            dataset, size = item
            batch.append(dataset)
            batch_bytes += size
            if len(batch) >= STORE_BATCH_FILES or batch_bytes >= STORE_BATCH_BYTES:
                self._store_batch(batch, result)
                batch, batch_bytes = [], 0
        if batch:
            self._store_batch(batch, result)
        return result

    def _store_batch(self, batch: list[Dataset], result: StoreResult) -> None:
        with self._errors("storing instances"):
            try:
                response = self.client.store_instances(batch)
            except requests.HTTPError as exc:
                # A refusal of every instance (409) still says which and why, in its body.
                refused = _stow_response(exc.response)
                if refused is None:
                    raise
                response = refused
        for item in response.get("ReferencedSOPSequence", []):
            result.stored.append(str(item.get("ReferencedSOPInstanceUID", "")))
        for item in response.get("FailedSOPSequence", []):
            code = int(item.get("FailureReason", 0) or 0)
            reason = _FAILURE_REASONS.get(code, "refused")
            result.failed.append(
                StoreFailure(
                    sop_instance_uid=str(item.get("ReferencedSOPInstanceUID", "")) or None,
                    reason=f"{reason} (0x{code:04X})",
                )
            )

    def _write_instance(self, dataset: Dataset, dest: Path) -> Path:
        uid = str(dataset.get("SOPInstanceUID", ""))
        # The UID becomes a file name: a hostile or broken archive must not pick a path.
        if not _UID.match(uid) or len(uid) > 64:
            raise ArchiveUnavailable(
                f"the archive at {self.display_url} sent an instance with an invalid SOPInstanceUID "
                f"{uid[:80]!r}; nothing more was written"
            )
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        path = dest / f"{uid}.dcm"
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as exc:
            raise BadInput(f"cannot write {path} ({exc.strerror or exc})") from exc
        return path

    @contextmanager
    def _errors(self, action: str, *, missing: str | None = None) -> Iterator[None]:
        """Turn what requests and dicomweb-client raise into Sahay errors that say what to do.

        The messages name the archive without any credentials; requests' own messages (which
        quote URLs and internals) are not passed on.
        """
        try:
            yield
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            self._raise_for_status(status, action, missing)
        except requests.Timeout as exc:
            raise ArchiveUnavailable(
                f"the archive at {self.display_url} did not answer within {self.timeout_s:g} s while "
                f"{action}; try again, or ask the administrator to raise SAHAY_PACS_TIMEOUT_S"
            ) from exc
        except requests.ConnectionError as exc:
            raise ArchiveUnavailable(
                f"cannot reach the archive at {self.display_url} while {action} ({_reason(exc)}); "
                "check that it is running and that SAHAY_PACS_URL is right"
            ) from exc
        except requests.RequestException as exc:
            raise ArchiveUnavailable(
                f"talking to the archive at {self.display_url} failed while {action} ({type(exc).__name__})"
            ) from exc
        except (ValueError, InvalidDicomError) as exc:
            # dicomweb-client raises ValueError for a response it cannot parse.
            raise ArchiveUnavailable(
                f"the archive at {self.display_url} sent an answer Sahay cannot read while {action}: {exc}"
            ) from exc

    def _raise_for_status(self, status: int | None, action: str, missing: str | None) -> NoReturn:
        where = f"the archive at {self.display_url}"
        if status in (401, 403):
            raise ArchiveUnavailable(
                f"{where} refused Sahay's login (HTTP {status}) while {action}; ask the administrator "
                "to check SAHAY_PACS_USERNAME and SAHAY_PACS_PASSWORD"
            )
        if status == 404 and missing is not None:
            raise BadInput(f"{missing} is not in {where} (HTTP 404); check the UID with `sahay pacs query`")
        if status == 404:
            raise ArchiveUnavailable(
                f"{where} has no DICOMweb service there (HTTP 404 while {action}); check SAHAY_PACS_URL"
            )
        if status is not None and 400 <= status < 500:
            raise BadInput(f"{where} rejected the request (HTTP {status}) while {action}")
        raise ArchiveUnavailable(f"{where} failed (HTTP {status}) while {action}; try again later")


def default_pull_dir(study_uid: str) -> Path:
    """Where ``sahay pacs pull`` writes when no folder is named: ``sahay-pacs/<study UID>``."""
    return DEFAULT_PULL_ROOT / check_uid(study_uid, "study UID")


def check_uid(value: str, what: str) -> str:
    """A DICOM UID: digits and dots, at most 64 characters."""
    if not _UID.match(value) or len(value) > 64:
        raise BadInput(f"{value!r} is not a DICOM {what} (digits and dots, at most 64 characters)")
    return value


def check_study_date(value: str) -> str:
    """A DICOM date (``20240102``) or range (``20240101-20241231``, ``20240101-``, ``-20241231``)."""
    match = _DICOM_DATE.match(value.strip())
    example = "use YYYYMMDD or a range YYYYMMDD-YYYYMMDD, e.g. 20240101-20241231"
    if not match or not any(match.groups()):
        raise BadInput(f"study date {value!r} is not a DICOM date; {example}")
    days = []
    for text in match.groups():
        if text:
            try:
                days.append(date(int(text[:4]), int(text[4:6]), int(text[6:])))
            except ValueError:
                raise BadInput(
                    f"study date {value!r} holds {text}, which is not a real date; {example}"
                ) from None
    if len(days) == 2 and days[0] > days[1]:
        raise BadInput(f"study date range {value!r} ends before it starts")
    return value.strip()


def check_modality(value: str) -> str:
    modality = value.strip().upper()
    if not _MODALITY.match(modality):
        raise BadInput(f"modality {value!r} is not a DICOM modality code such as CR, DX, CT or MR")
    return modality


def check_patient(value: str) -> str:
    patient = value.strip()
    if not patient or len(patient) > 64 or any(c in patient for c in "\\\r\n\t") or not patient.isprintable():
        raise BadInput(
            f"patient {value!r} is not a patient ID or name (at most 64 printable characters, no backslash)"
        )
    return patient


def _from_json(answer: dict[str, Any]) -> Dataset:
    return Dataset.from_json(answer)


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return str(value)


def _number(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _study_summary(ds: Dataset) -> StudySummary | None:
    uid = _text(ds, "StudyInstanceUID")
    if uid is None:
        return None
    return StudySummary(
        study_uid=uid,
        date=_text(ds, "StudyDate"),
        time=_text(ds, "StudyTime"),
        description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        modalities=[str(v) for v in dicom_values(ds.get("ModalitiesInStudy")) if v],
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        series=_number(ds, "NumberOfStudyRelatedSeries"),
        instances=_number(ds, "NumberOfStudyRelatedInstances"),
    )


def _series_summary(ds: Dataset) -> SeriesSummary | None:
    uid = _text(ds, "SeriesInstanceUID")
    if uid is None:
        return None
    return SeriesSummary(
        series_uid=uid,
        modality=_text(ds, "Modality"),
        number=_number(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"),
        instances=_number(ds, "NumberOfSeriesRelatedInstances"),
    )


def _instances(items: list[Path | Dataset], skipped: list[str]) -> Iterator[tuple[Dataset, int]]:
    """Each dataset to store with its size in bytes, reading files one at a time."""
    files: list[Path] = []
    for item in items:
        if isinstance(item, Dataset):
            continue
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif item.is_file():
            _check_dicom_file(item)
            files.append(item)
        else:
            raise BadInput(f"{item} does not exist; give DICOM files or folders to push")
    for item in items:
        if isinstance(item, Dataset):
            _check_storable(item, "a dataset")
            yield item, 0
    for path in files:
        try:
            dataset = read_dicom_dataset(path)
        except BadInput as exc:
            skipped.append(f"{path}: {exc}")
            continue
        problem = _storable_problem(dataset)
        if problem:
            skipped.append(f"{path}: {problem}")
            continue
        yield dataset, path.stat().st_size


def _check_dicom_file(path: Path) -> None:
    try:
        dataset = read_dicom_dataset(path)
    except UnsupportedFormat as exc:
        raise BadInput(f"{exc} Only DICOM can be pushed.") from exc
    _check_storable(dataset, str(path))


def _check_storable(dataset: Dataset, name: str) -> None:
    problem = _storable_problem(dataset)
    if problem:
        raise BadInput(f"{name} cannot be pushed: {problem}")


def _storable_problem(dataset: Dataset) -> str | None:
    missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID") if not dataset.get(k)]
    return f"it has no {', '.join(missing)}" if missing else None


def _stow_response(response: requests.Response | None) -> Dataset | None:
    """The STOW-RS status dataset from an error response, when the archive sent one."""
    if response is None or response.status_code != 409 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list):
        body = body[0] if body else None
    if not isinstance(body, dict):
        return None
    try:
        return Dataset.from_json(body)
    except (ValueError, TypeError, KeyError):
        return None


def _without_credentials(url: str) -> str:
    """The URL as it may be shown: no user name or password, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _reason(exc: requests.ConnectionError) -> str:
    """A short cause ("connection refused") instead of urllib3's paragraph."""
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "unknown host name"),
        ("nodename nor servname", "unknown host name"),
        ("temporary failure in name resolution", "host name not resolved"),
        ("certificate", "TLS certificate problem"),
        ("ssl", "TLS problem"),
        ("reset", "connection reset"),
    ):
        if needle in text:
            return reason
    return "connection failed"


def dicom_values(value: object) -> list[object]:
    """A DICOM value as a list: empty for None, one item for a single value, all items of a multi-value."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)
