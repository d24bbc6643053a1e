"""Settings from ``SAHAY_*`` environment variables: the one place configuration is read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sahay.errors import BadInput


class Settings(BaseSettings):
    """Runtime settings. Every field reads ``SAHAY_<FIELD>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="SAHAY_", extra="ignore")

    home: Path = Field(default=Path("~/.sahay"), description="Models, database and uploads live here.")
    max_file_mb: float = Field(default=200.0, gt=0, description="Largest image file accepted, in MB.")
    max_pixels: int = Field(default=50_000_000, gt=0, description="Largest image accepted, in pixels.")
    default_chest_model: str = Field(
        default="xrv-densenet121-res224-all",
        description="Model used for chest radiographs when none is named.",
    )
    model_mirror: str | None = Field(
        default=None,
        description="Base URL that replaces each catalogue entry's download folder (a hospital mirror).",
    )
    download_timeout_s: float = Field(default=60.0, gt=0)
    runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="What runs the models: onnx (ONNX Runtime, torch-free; needs `sahay models export-onnx` "
        "and the onnx extra), torch, or auto (ONNX Runtime when both are there, else torch).",
    )
    onnx_on_install: bool = Field(
        default=True,
        description="Export a model to ONNX when it is pulled or imported, when the onnx extra is "
        "installed, so that analyses run torch-free from the first one (about 10 s per model).",
    )
    auto_pull: bool = Field(
        default=True, description="Pull the default model on first use when it is missing."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database (PostgreSQL); SQLite under SAHAY_HOME when unset.",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="URL of a Qdrant server for vector search; embedded Qdrant under SAHAY_HOME when unset.",
    )
    qdrant_api_key: str | None = Field(default=None, description="API key of the Qdrant server, if any.")
    text_embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers model folder or name; the packaged all-MiniLM-L6-v2 when unset.",
    )
    text_embedding_backend: Literal["auto", "onnx", "sentence-transformers"] = Field(
        default="auto",
        description="What runs the text embedding model: onnx (ONNX Runtime, the export `sahay kb build` "
        "makes), sentence-transformers, or auto (onnx when exported and installed).",
    )

    llm: str = Field(
        default="grounded",
        description="Who writes chat answers: a name from sahay.chat.backends.BACKENDS "
        "(`sahay chat --help` lists them); checked when the chat starts.",
    )
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible server, e.g. http://localhost:11434/v1"
    )
    llm_model: str | None = Field(default=None, description="Model name the server knows, e.g. llama3.1:8b")
    llm_api_key: str | None = Field(default=None, description="API key for the LLM server, if it needs one.")
    llm_model_path: Path | None = Field(default=None, description="GGUF file for SAHAY_LLM=llamacpp.")
    llm_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to wait for the LLM's first or next piece of text before the answer falls "
        "back to the grounded composer (a refused connection falls back at once).",
    )
    web_search_url: str | None = Field(
        default=None, description="An Exa-style search API; web search is off when unset."
    )
    web_search_api_key: str | None = Field(default=None, description="API key for the web search API.")

    pacs_url: str | None = Field(
        default=None,
        description="DICOMweb root of the hospital archive (QIDO/WADO/STOW), "
        "e.g. http://pacs:8042/dicom-web. Set by the administrator; users never pass a URL.",
    )
    pacs_username: str | None = Field(default=None, description="HTTP basic user for the archive, if any.")
    pacs_password: str | None = Field(default=None, description="HTTP basic password for the archive.")
    pacs_timeout_s: float = Field(default=30.0, gt=0)

    secret_key: str | None = Field(
        default=None,
        description="Signs the web service's tokens; a random key kept in SAHAY_HOME when unset.",
    )
    access_token_minutes: int = Field(default=15, gt=0, description="Lifetime of an access token.")
    refresh_token_days: int = Field(default=7, gt=0, description="Lifetime of a refresh token.")
    login_attempts_per_minute: int = Field(
        default=5, gt=0, description="Failed logins allowed per user name and client address per minute."
    )
    workers: int = Field(default=1, gt=0, description="Inference worker threads in the web service.")
    # Service limits: what one request, one user and everyone together may hold (docs/security.md).
    max_body_kb: int = Field(
        default=64, gt=0, description="Largest request body other than an upload, in KB."
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds a client may take to send a request body (uploads too)."
    )
    max_connections: int = Field(
        default=256, gt=0, description="Concurrent connections `sahay serve` accepts; beyond, 503."
    )
    max_waiting_per_user: int = Field(
        default=4, gt=0, description="Requests one user may have waiting for a model at once; beyond, 429."
    )
    max_jobs_per_user: int = Field(
        default=2, gt=0, description="Background analyses one user may have queued or running; beyond, 429."
    )
    max_queued_jobs: int = Field(
        default=16, gt=0, description="Background analyses queued or running for everyone; beyond, 503."
    )
    sweep_interval_s: float = Field(
        default=600.0, gt=0, description="How often the service removes what interrupted uploads left."
    )
    api_docs: bool = Field(
        default=True, description="Serve the interactive API documentation at /docs (from local files)."
    )

    # Accounts and sign-in
    login_attempts_per_address: int = Field(
        default=30,
        gt=0,
        description="Failed logins allowed per client address per minute, whatever the user names.",
    )
    login_attempts_overall: int = Field(
        default=300,
        gt=0,
        description="Failed logins allowed per minute from all clients together; beyond, every login waits.",
    )
    login_lockout_max_minutes: float = Field(
        default=60.0,
        gt=0,
        description="Longest lockout: each one in a row doubles, from one minute up to this.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For is believed; none by default, and then the connecting address is the client.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """Each entry an IP address or network, written in its canonical form."""
        import ipaddress

        networks = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                networks.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                example = "e.g. 10.0.0.5 or 10.0.0.0/24"
                raise ValueError(f"{entry!r} is not an IP address or network ({example})") from None
        return ",".join(networks)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def models_dir(self) -> Path:
        return self.home_dir / "models"

    @property
    def blobs_dir(self) -> Path:
        """Content-addressed files (case images, thumbnails, uploads)."""
        return self.home_dir / "blobs"

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = "SAHAY_" + str(error["loc"][0]).upper() if error.get("loc") else "a SAHAY_* variable"
        raise BadInput(f"invalid setting {variable}: {error['msg']}") from exc


def reload_settings() -> Settings:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
    return get_settings()


def keep_private(settings: Settings) -> None:
    """Make every file this process creates owner-only, and SAHAY_HOME 0700.

    The command line and the web service call this first; the database (and its WAL), uploads,
    heatmaps and reports then never appear readable by other users of the machine, whatever
    the umask of the shell that started Sahay.
    """
    import os

    from sahay.fileio import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)
    home = settings.home_dir
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid == os.getuid():
        home.chmod(0o700)
