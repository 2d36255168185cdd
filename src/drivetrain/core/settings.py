"""Settings: one validated object built at start-up and passed in.

Sources, highest priority first: constructor arguments, ``DRIVETRAIN_*`` environment variables,
``drivetrain.toml`` in the working directory (or the file named by ``DRIVETRAIN_CONFIG``), then
defaults. Every setting has a working default for the embedded deployment; data lives under
``./.drivetrain/``. Nothing here is read at import time.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from drivetrain.core.errors import ConfigurationError

Deployment = Literal["embedded", "production"]
#: Which adapters a process uses: "embedded" (in-process bus, SQLite by default) or "fleet"
#: (JetStream backbone, PostgreSQL state, MQTT vehicle link; see docs/scale.md).
Profile = Literal["embedded", "fleet"]


class Settings(BaseSettings):
    """Every knob of a Drivetrain process."""

    model_config = SettingsConfigDict(env_prefix="DRIVETRAIN_", extra="forbid")

    deployment: Deployment = Field(
        "embedded",
        description="'embedded' (one process, generated secrets, bootstrap admin) or "
        "'production' (secrets must be given, no bootstrap admin).",
    )
    data_dir: Path = Field(Path(".drivetrain"), description="Where state and telemetry live.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the state database; default: SQLite in data_dir. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    state_pool_size: int = Field(
        5, ge=1, le=1000,
        description="PostgreSQL: connections each process keeps open to the state database "
        "(per engine: the primary and each replica).",
    )
    state_max_overflow: int = Field(
        10, ge=0, le=1000,
        description="PostgreSQL: connections opened beyond state_pool_size under load, closed "
        "when returned.",
    )
    state_pool_timeout_s: float = Field(
        30.0, gt=0, description="PostgreSQL: seconds to wait for a free pooled connection.",
    )
    state_pool_recycle_s: int = Field(
        1800, ge=-1,
        description="PostgreSQL: reopen a pooled connection older than this many seconds "
        "(-1: never); keep it below the server's or a proxy's idle timeout.",
    )
    state_pool_pre_ping: bool = Field(
        True, description="PostgreSQL: test a pooled connection before lending it (a "
        "restarted server or a dropped proxy connection is then replaced, not reported).",
    )
    state_pgbouncer: bool = Field(
        False,
        description="PostgreSQL: the URLs point at PgBouncer in transaction mode: no "
        "server-side prepared statements and no session state (see docs/scale.md).",
    )
    state_replica_urls: list[str] = Field(
        default_factory=list,
        description="PostgreSQL read replicas (SQLAlchemy URLs): fleet queries, twin reads "
        "and listings are served by them in turn; writes always go to database_url.",
    )
    state_region_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Database of each region's personal state (twins' reported location, "
        "driving behaviour and cabin values), e.g. {\"EU\": \"postgresql+psycopg://db-eu/"
        "state\"}. A region not named here: a SQLite file next to an embedded state "
        "database, else the state database itself (see docs/privacy.md).",
    )
    state_twin_partitions: int = Field(
        16, ge=1, le=1024,
        description="PostgreSQL: hash partitions of the twins tables by VIN, applied when "
        "the twins are partitioned (migration twins_0003); later changes have no effect.",
    )
    auth_secret: SecretStr | None = Field(
        None,
        description="Key that signs API access tokens (>= 32 characters). Required in "
        "production; generated once per data_dir in embedded mode.",
    )
    audit_key: SecretStr | None = Field(
        None,
        description="Key that authenticates the audit log's hash chains (HMAC-SHA256, >= 32 "
        "characters); default: derived from the auth secret. Keep it outside the database.",
    )
    audit_checkpoint_dir: Path | None = Field(
        None,
        description="Where `drivetrain serve` writes a signed checkpoint of every audit chain "
        "head every audit_checkpoint_interval_s (keep it off the database's host or on "
        "write-once storage); unset: none are written.",
    )
    audit_checkpoint_interval_s: float = Field(
        3600.0, gt=0, description="Seconds between audit checkpoints (audit_checkpoint_dir).",
    )
    token_ttl_s: int = Field(3600, gt=0, description="Lifetime of an access token, seconds.")
    token_requests_per_minute: int = Field(
        60, ge=1, description="Token requests one remote address may make per minute; past "
        "it the token endpoint answers 429 (each request costs a scrypt hash).",
    )
    token_failures_per_minute: int = Field(
        10, ge=1, description="Failed token requests per client id and minute; past it "
        "that client id is refused (429) until the minute has passed (secret guessing).",
    )
    api_requests_per_minute: int = Field(
        1200, ge=1, description="Requests one API client (by the client id of its token) may "
        "make per minute to the routes that need a token; past it they answer 429 with "
        "Retry-After, while other clients are served.",
    )
    api_streams_per_client: int = Field(
        8, ge=1, description="Server-sent-event streams one API client may hold open.",
    )
    api_streams_per_tenant: int = Field(
        64, ge=1, description="Server-sent-event streams one tenant's clients may hold open.",
    )
    privacy_min_group_vehicles: int = Field(
        5, ge=2, le=1000,
        description="Safe aggregates: the fewest distinct vehicles a released group (map cell "
        "x hour) may hold; a caller may ask for more, never fewer.",
    )
    privacy_epsilon_budget: float = Field(
        10.0, gt=0, le=1000,
        description="Safe aggregates: the total epsilon a tenant's differentially private "
        "releases may spend (a lifetime total; releases do not refill it).",
    )
    data_act_containers_file: str | None = Field(
        None, description="EU Data Act: a containers definition (JSON) replacing the shipped "
        "one (containers of signals, trade secrets with their reasons).",
    )
    data_act_cost_per_request_eur: float = Field(
        0.001, ge=0, le=1000, description="EU Data Act metering: the cost of one request by a "
        "third party (what a small or medium enterprise pays).",
    )
    data_act_cost_per_mb_eur: float = Field(
        0.02, ge=0, le=1000, description="EU Data Act metering: the cost of one megabyte "
        "served to a third party.",
    )
    data_act_margin: float = Field(
        0.25, ge=0, le=10, description="EU Data Act metering: the margin over cost a recipient "
        "that is not a small or medium enterprise pays (0.25: cost + 25 %).",
    )
    api_host: str = Field("127.0.0.1", description="Address `drivetrain serve` binds.")
    api_port: int = Field(8080, ge=0, le=65535, description="Port `drivetrain serve` binds.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token a Prometheus scrape of /metrics (API) or a worker's "
        "--metrics-port must present (>= 32 characters); unset: metrics are served to "
        "loopback clients only. Never printed.",
    )
    cloud_key_file: Path | None = Field(
        None,
        description="PEM file of the Ed25519 key that signs what vehicles act on (desired "
        "state, campaigns, commands); default: data_dir/keys/cloud-signing.pem, created in "
        "embedded mode, required in production.",
    )
    profile: Profile = Field(
        "embedded",
        description="'embedded' (the in-process bus between ingest and its consumers) or "
        "'fleet' (a NATS JetStream backbone, PostgreSQL state and an MQTT vehicle link: "
        "backbone_url, database_url and broker_url are then required).",
    )
    backbone_url: str | None = Field(
        None,
        description="NATS JetStream of the fleet profile's backbone, e.g. nats://127.0.0.1:4222 "
        "or a cluster's seed list nats://h1:4222,h2:4222,h3:4222.",
    )
    backbone_replicas: int = Field(
        1, ge=1, le=5,
        description="Copies of each backbone stream (3 on a JetStream cluster of three nodes).",
    )
    backbone_namespace: str = Field(
        "",
        description="Prefix of the backbone's stream names and subjects, so several "
        "deployments or test runs can share one JetStream without seeing each other's "
        "messages: in namespace 'eu1' stream telemetry-validated is eu1-telemetry-validated "
        "on subjects eu1.dt.platform.v1.>. Letters, digits, '-' and '_' (at most 32); "
        "empty: the plain names.",
    )
    broker_url: str | None = Field(
        None,
        description="MQTT 5 broker of the vehicle link, e.g. mqtt://127.0.0.1:1883; default: "
        "the in-process transport (embedded).",
    )
    broker_password: SecretStr | None = Field(
        None,
        description="Password of this process's account on the MQTT broker "
        "(DRIVETRAIN_BROKER_PASSWORD or broker_password in drivetrain.toml); the user name "
        "comes from the command line or the broker URL. Never printed.",
    )
    campaign_webhook_allow_private: bool = Field(
        False,
        description="Post campaigns' webhook destinations to loopback, link-local and private "
        "addresses too (refused by default: a campaign author must not reach internal "
        "services through the platform).",
    )
    lake_roots: dict[str, Path] = Field(
        default_factory=dict,
        description="Storage root of the telemetry lake per region, e.g. {\"EU\": "
        "\"/srv/lake-eu\"}; a region not named here uses data_dir/lake/<region>.",
    )
    lake_url: str | None = Field(
        None,
        description="Keep the telemetry lake as tables of an open table format on object "
        "storage instead of local files: a URL such as 's3://bucket/prefix', "
        "'abfss://container@account.dfs.core.windows.net/prefix', 'gs://bucket/prefix' or "
        "'file:///srv/lake'; each region's table is '<lake_url>/region=<R>'. Unset: the "
        "embedded lake under lake_roots.",
    )
    lake_table_format: Literal["delta"] = Field(
        "delta",
        description="Open table format of the lake at lake_url (Delta Lake; see docs/scale.md "
        "for the measurement behind the choice).",
    )
    lake_storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Object-store settings for lake_url, e.g. {\"AWS_ENDPOINT_URL\": "
        "\"http://minio:9000\", \"AWS_REGION\": \"eu-central-1\"}. Credentials belong in the "
        "environment (AWS_ACCESS_KEY_ID, AZURE_STORAGE_ACCOUNT_KEY, GOOGLE_APPLICATION_"
        "CREDENTIALS...), where the object-store library reads them, never here.",
    )
    lake_encryption: Literal["off", "per_vehicle"] = Field(
        "off",
        description="Crypto-shredding of the embedded lake: 'per_vehicle' encrypts each "
        "vehicle's rows (Parquet modular encryption) under a data key of its own, kept by the "
        "key service under data_dir/keys, so erasing a vehicle destroys its key and every copy "
        "of its files, backups included, becomes unreadable. 'off' writes plain Parquet.",
    )
    lake_retention_days: dict[str, int] = Field(
        default_factory=dict,
        description="Days telemetry is kept, per 'REGION:category' ('*' matches any region "
        "or category, the most specific key wins), e.g. {\"EU:location\": 30}; "
        "unnamed data is kept until deleted.",
    )

    spark_master: str = Field(
        "local[2]",
        min_length=1,
        description="Apache Spark master the lake's batch jobs run on: 'local[N]' (N worker "
        "threads in this process's JVM) or a cluster URL such as spark://host:7077, "
        "yarn or k8s://https://host:6443.",
    )

    lake_batch_window_days: int = Field(
        35,
        ge=1,
        description="How long the lake remembers a batch id after the day of its last sample, "
        "days: a re-delivery within the window is skipped, a later one stored again. Must "
        "exceed ingest_max_sample_age_s, so ingestion refuses what the lake has forgotten.",
    )

    ingest_max_sample_age_s: float = Field(
        30 * 86_400.0,
        gt=0,
        description="Ingestion refuses samples measured longer ago than this at receipt "
        "(timestamp_too_old; samples before 2000-01-01 always are), seconds.",
    )
    ingest_max_clock_ahead_s: float = Field(
        300.0,
        ge=0,
        description="Ingestion refuses samples measured more than this ahead of the "
        "receiver's clock (timestamp_in_future), seconds.",
    )
    ingest_vehicle_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        description="How long an ingest worker reuses a fleet-registry answer (a retirement "
        "or key rotation takes at most this long to apply), seconds; 0 asks every time.",
    )
    ota_delta_common_sources: int = Field(
        3,
        ge=0,
        le=8,
        description="Publishing an image with no delta source named: deltas are published "
        "from this many of the software versions most installed on its hardware id across "
        "the tenant's twins (those whose image is published); 0 publishes none.",
    )
    ota_max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        description="Largest image POST /v1/ota/images accepts, bytes; a larger one is refused "
        "(413) as soon as its declared or received length exceeds it.",
    )
    ingest_max_message_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest uplink message ingestion reads, bytes; a larger one is refused "
        "unread as too_large.",
    )
    ingest_max_samples_per_message: int = Field(
        100_000,
        ge=1,
        description="Most samples (rows) a telemetry message may declare; more is too_large, "
        "refused before decompressing.",
    )
    ingest_max_decompressed_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Most bytes a telemetry body may decompress to; more is too_large, "
        "refused before decompressing.",
    )
    ingest_dead_letter_max_bytes: int = Field(
        64 * 1024,
        ge=0,
        description="Raw bytes kept in a dead letter of a message whose signature did not "
        "verify (unknown sender, bad signature, unreadable); the rest is counted, not kept. "
        "Authentic messages, and unknown_session ones (replayed once their session is "
        "stored), are kept whole (they are at most ingest_max_message_bytes).",
    )
    ingest_dead_letters_per_minute: int = Field(
        60,
        ge=1,
        description="Dead letters one ingest worker stores per claimed VIN (or topic) and "
        "minute; past it they are counted (outcome dead_letter_not_kept), not stored.",
    )
    ingest_twin_flush_s: float = Field(
        0.0,
        ge=0,
        description="How often ingestion writes the latest values to the twins' reported "
        "state under load, seconds (also whenever the worker goes idle); 0 (the embedded "
        "default) writes every micro-batch's. `drivetrain worker ingest` uses 2 s unless "
        "--twin-flush-s says otherwise. The twin lags the lake by up to this much.",
    )
    entitlement_lease_s: float = Field(
        7 * 86_400.0,
        gt=0,
        le=366 * 86_400.0,
        description="How long a feature entitlement token is valid before the cloud renews "
        "it, seconds (it also ends with the paid period): a car offline longer keeps a "
        "feature no more than this plus the offer's grace period after it was taken away.",
    )
    payment_provider: Literal["test"] = Field(
        "test",
        description="The payment provider subscriptions are charged through; 'test' is the "
        "built-in one (cards test_card_ok, test_card_declined, test_card_insufficient).",
    )
    insights_score_every_s: float = Field(
        3600.0,
        ge=0,
        description="How often the control plane (serve, worker dispatch) scores each "
        "tenant's lake with its latest maintenance model and stores the predictions, seconds; "
        "0 turns the scheduled scoring off (drivetrain insights score still runs it).",
    )
    ingest_max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts at a micro-batch that fails with an error of its own (not an "
        "unavailable database or lake) before its messages are tried apart and the failing "
        "one is dead-lettered as processing_error.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = config_file()
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @model_validator(mode="after")
    def _no_credentials_in_lake_storage_options(self) -> Settings:
        # settings are printed and stored; object-store credentials live in the environment
        for key in self.lake_storage_options:
            if any(word in key.upper() for word in
                   ("SECRET", "PASSWORD", "TOKEN", "ACCOUNT_KEY", "ACCESS_KEY", "SAS")):
                raise ConfigurationError(
                    f"lake_storage_options names {key!r}, a credential; give it in the "
                    "environment (where the object-store library reads it), not in the settings"
                )
        return self

    @model_validator(mode="after")
    def _batch_window_covers_the_sample_age(self) -> Settings:
        # A batch whose id the lake forgot must be too old for ingestion to accept, or a
        # re-delivery of it would be stored twice; one day more covers the UTC-date rounding.
        if self.lake_batch_window_days * 86_400 < self.ingest_max_sample_age_s + 86_400:
            raise ConfigurationError(
                f"lake_batch_window_days = {self.lake_batch_window_days} must cover "
                f"ingest_max_sample_age_s ({self.ingest_max_sample_age_s:g} s) plus a day, i.e. "
                f"be at least {math.ceil(self.ingest_max_sample_age_s / 86_400) + 1}: otherwise "
                "a batch re-delivered after the lake forgot its id would be stored twice"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.deployment == "production":
            if self.auth_secret is None:
                raise ConfigurationError(
                    "DRIVETRAIN_AUTH_SECRET is required when deployment is 'production' "
                    "(embedded mode generates one; production never uses a default)"
                )
            if len(self.auth_secret.get_secret_value()) < 32:
                raise ConfigurationError(
                    "DRIVETRAIN_AUTH_SECRET must be at least 32 characters, "
                    f"got {len(self.auth_secret.get_secret_value())}"
                )
        return self

    @model_validator(mode="after")
    def _replicas_are_postgresql(self) -> Settings:
        if not self.state_replica_urls:
            return self
        if not (self.database_url or "").lower().startswith("postgresql"):
            raise ConfigurationError(
                "state_replica_urls needs a PostgreSQL primary: database_url must be a "
                "postgresql+psycopg:// URL (SQLite has no replicas)"
            )
        for index, url in enumerate(self.state_replica_urls):
            if not url.lower().startswith("postgresql"):
                shown = url.split("@")[-1]
                raise ConfigurationError(
                    f"state_replica_urls[{index}] = {shown!r}: expected a PostgreSQL URL "
                    "(postgresql+psycopg://user@host/db)"
                )
        return self

    @model_validator(mode="after")
    def _region_urls_name_regions(self) -> Settings:
        from drivetrain.core.regions import REGIONS

        for region in self.state_region_urls:
            if region not in REGIONS:
                raise ConfigurationError(
                    f"state_region_urls: {region!r} is not a region; expected one of "
                    f"{', '.join(REGIONS)}")
        return self

    @model_validator(mode="after")
    def _backbone_namespace_is_a_name(self) -> Settings:
        from drivetrain.core.transport.jetstream_streams import check_namespace

        check_namespace(self.backbone_namespace)
        return self

    @model_validator(mode="after")
    def _fleet_profile_has_its_services(self) -> Settings:
        if self.profile != "fleet":
            return self
        problems = []
        if not (self.backbone_url or "").strip().lower().startswith("nats://"):
            problems.append(f"backbone_url must be nats://host:port, got {self.backbone_url!r}")
        if not (self.database_url or "").lower().startswith("postgresql"):
            shown = ("unset (SQLite)" if not self.database_url
                     else repr("..." + self.database_url.split("@")[-1]))
            problems.append(f"database_url must be a PostgreSQL URL, got {shown}")
        if not (self.broker_url or "").strip().lower().startswith(("mqtt://", "mqtts://")):
            problems.append(f"broker_url must be mqtt:// or mqtts://, got {self.broker_url!r}")
        if problems:
            raise ConfigurationError(
                "profile 'fleet' needs its services: " + "; ".join(problems)
            )
        return self

    @property
    def cloud_key_path(self) -> Path:
        """The cloud signing key file in force: the configured one, or under data_dir."""
        return self.cloud_key_file or self.data_dir / "keys" / "cloud-signing.pem"

    @property
    def state_database_url(self) -> str:
        """The database URL in force: the configured one, or SQLite under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'state.db').resolve()}"


def config_file() -> Path:
    """The TOML file settings are read from: ``$DRIVETRAIN_CONFIG`` or ``./drivetrain.toml``."""
    return Path(os.environ.get("DRIVETRAIN_CONFIG", "drivetrain.toml"))


def load_settings(**overrides: object) -> Settings:
    """Build the settings from all sources.

    Raises:
        ConfigurationError: unsafe values, a TOML file that does not parse, or values of the
            wrong kind: one line per problem, naming where the value came from (the file, the
            environment variable or the argument), the setting and what was expected.
    """
    toml = config_file()
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{toml.resolve()}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigurationError(f"{toml.resolve()}: cannot read it: {e.strerror or e}") from None
    except ValidationError as e:
        problems = [_problem(error, toml, overrides) for error in e.errors(include_url=False)]
        raise ConfigurationError("\n".join(problems)) from None


def _problem(error: ErrorDetails, toml: Path, overrides: Mapping[str, object]) -> str:
    """One line for one invalid value: where it came from, the setting, what was expected."""
    name = str(error["loc"][0]) if error["loc"] else "?"
    setting = ".".join(str(part) for part in error["loc"]) or name
    variable = f"DRIVETRAIN_{name.upper()}"
    if name in overrides:
        where = f"argument {name}"
    elif variable in os.environ:
        where = f"environment variable {variable}"
    else:
        where = str(toml.resolve())
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(name, list(Settings.model_fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; the settings are {', '.join(sorted(Settings.model_fields))}")
        return f"{where}: unknown setting {name!r}{hint}"
    return f"{where}: {setting} = {error['input']!r}: {_expected(error)}"


def _expected(error: ErrorDetails) -> str:
    message = error["msg"]
    if error["type"] == "path_type":
        return "expected a path"
    for prefix, replacement in (("Input should be ", "expected "), ("Value error, ", "")):
        if message.startswith(prefix):
            return replacement + message[len(prefix):]
    return message[:1].lower() + message[1:]
