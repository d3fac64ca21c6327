"""Store settings: the servers that hold state (the database, the Celery broker, Milvus) and
how long the service waits on them, since an outage of any of them is met by these values."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import shown


class StoreSettings(BaseSettings):
    """Stores: database, connection pool, broker, Milvus"""

    database_url: str = Field(
        "",
        description="The database: `sqlite:///…` or `postgresql+psycopg://user@host/db`",
        json_schema_extra=shown("`sqlite:///$DATA_DIR/app.db`"),
    )
    db_pool_size: int = Field(
        10,
        ge=1,
        le=1000,
        description="PostgreSQL connections each process keeps open. An answer holds one only "
        "for a moment (never while the model writes), plus one for its typing indicator and "
        "one for renewing its claim, so a `--pool threads` worker needs 3 x `-c`; a worker "
        "that does not fit refuses to start and says which to raise (app/store/pool.py)",
    )
    db_max_overflow: int = Field(
        20,
        ge=0,
        le=1000,
        description="How many more PostgreSQL connections than `DB_POOL_SIZE` each process "
        "may open at a peak",
    )
    db_pool_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a request or task waits for a free connection before it fails "
        "(and is retried)",
    )
    db_connect_timeout_s: int = Field(
        3,
        ge=1,
        le=300,
        description="Seconds to wait for PostgreSQL to accept a connection; a callback that "
        "cannot store its message in time keeps it on local disk (`DATA_DIR/spool`) and "
        "stores it when the database is back",
    )
    celery_broker_url: str = Field(
        "",
        description="Embedded broker (no server) by default; `redis://127.0.0.1:6379/0` in "
        "production",
        json_schema_extra=shown("`sqla+sqlite:///$DATA_DIR/broker.sqlite`"),
    )
    milvus_uri: str = Field(
        "http://127.0.0.1:19530",
        description="Milvus server or cluster; on a loopback address with nothing listening, "
        "`flask serve` starts the embedded milvus-lite server there itself (data in "
        "`$DATA_DIR/milvus`)",
    )
    milvus_token: str = Field("", description="Milvus credentials (`user:password` or API key)")
    milvus_collection: str = Field(
        "knowledge", description="Collection holding the knowledge chunks"
    )
    milvus_timeout_s: int = Field(
        5,
        ge=1,
        le=600,
        description="Seconds a knowledge search (or the connection it opens) may take, "
        "retries included, before it fails with a clear 503 (an answer task then retries "
        "later): a Milvus that is down must not hold a request for minutes",
    )

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri(cls, v: str) -> str:
        # Always a server URI: milvus-lite admits one process per data directory, so even the
        # embedded default runs as a server all processes share. (pymilvus also reads
        # MILVUS_URI from the environment at import and rejects file paths there.)
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.netloc:
            raise ValueError("must be http(s)://host:port of a Milvus or milvus-lite server")
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if v and not re.match(r"^(sqlite|postgresql(\+\w+)?)://", v):
            raise ValueError("must start with sqlite:// or postgresql://")
        return v

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        if v and not re.match(r"^(redis|rediss|amqp|sqla\+sqlite|sqla\+postgresql|memory)://", v):
            raise ValueError("must be a redis://, amqp:// or sqla+sqlite:// URL")
        return v

    @property
    def embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("sqla+")
