"""The process layout: which processes the service runs and each one's command line.

The one definition that `flask serve` (app/supervisor.py), docker/compose.yml, the README's
"Processes" table and the end-to-end tests (tests/support.py) take their commands from;
`flask layout procfile` prints it as a Procfile for honcho, systemd or compose users. Each
role is a function of the settings it depends on (`LLM_PARALLEL`, `LOG_LEVEL`,
`WECHAT_PASSIVE_MAX_HELD`, `MILVUS_URI`) and of a `Shape`: where the web tier listens and
how many processes each role runs.

Commands name their programs bare (`gunicorn`, `celery`, `flask`, `python`), as the
container image has them on PATH; `resolve` puts a virtual environment's bin folder first.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup

from app.knowledge import milvus_server
from app.settings import Settings

LLM_QUEUE = "llm"
DEFAULT_QUEUE = "default"
CELERY = ("celery", "-A", "app.worker")
FLASK = ("flask", "--app", "app")
#: gunicorn threads per web process, at the least (the benches of bench/RESULTS.md ran 8).
WEB_THREADS = 8
#: Seconds gunicorn lets a worker go silent before it replaces it (`flask serve`'s value;
#: gunicorn's default is 30).
WEB_TIMEOUT_S = 60


@dataclass(frozen=True)
class Shape:
    """The explicit parameters: where the web tier listens, how many processes run."""

    host: str = "127.0.0.1"
    port: int = 8000
    web_workers: int = 2
    llm_workers: int = 1
    default_concurrency: int = 2


#: `flask serve`'s defaults: one machine, the web tier on loopback behind nothing.
SINGLE_HOST = Shape()
#: docker/compose.yml: the web tier reachable from outside its container, a larger host.
CONTAINER = Shape(host="0.0.0.0", web_workers=4)


@dataclass(frozen=True)
class Process:
    name: str  # the Procfile's (and honcho's) name for it
    argv: tuple[str, ...]
    why: str

    def command(self, bin_dir: Path | None = None) -> str:
        """The argv as one shell line (honcho and Procfiles run commands through a shell)."""
        return shlex.join(resolve(self.argv, bin_dir))


def resolve(argv: Sequence[str], bin_dir: Path | None) -> list[str]:
    """``argv`` with its program taken from ``bin_dir`` (a virtual environment's bin)."""
    if bin_dir is None:
        return list(argv)
    return [str(bin_dir / argv[0]), *argv[1:]]


def web_threads(settings: Settings) -> int:
    # Passive replies hold up to WECHAT_PASSIVE_MAX_HELD requests of a process for up to 5.5 s
    # each; two threads beyond them are always free for acknowledgements and /healthz.
    return max(WEB_THREADS, settings.wechat_passive_max_held + 2)


def web(settings: Settings, *, host: str, port: int, workers: int) -> list[str]:
    """gunicorn with threads: callbacks are I/O (acknowledged in ms), passive tries wait."""
    return [
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(web_threads(settings)),
        "--timeout",
        str(WEB_TIMEOUT_S),
        "--access-logfile",
        "-",
        "app.wsgi:app",
    ]


def celery_worker(
    queues: Sequence[str], *, name: str, pool: str, concurrency: int, loglevel: str
) -> list[str]:
    """A Celery worker; named per role (``-n``): control replies and logs say which it is."""
    return [
        *CELERY,
        "worker",
        "-Q",
        ",".join(queues),
        "--pool",
        pool,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--loglevel",
        loglevel,
    ]


def llm_worker(settings: Settings, *, index: int = 1) -> list[str]:
    """One model per process, shared by a thread pool: the engine decodes up to LLM_PARALLEL
    answers together, and the spare threads keep FAQ answers (no model) and Dify's /v1 jobs
    from waiting behind long generations (bench/faq_latency.py)."""
    return celery_worker(
        [LLM_QUEUE],
        name=f"llm{index}",
        pool="threads",
        concurrency=2 * settings.llm_parallel,
        loglevel=settings.log_level,
    )


def default_worker(settings: Settings, *, concurrency: int) -> list[str]:
    """Indexing, reindex and the sweeps in processes: parsing and batch embedding use every
    core (OpenMP), so few at once; one slot stays free for the sweeps beside an upload."""
    return celery_worker(
        [DEFAULT_QUEUE],
        name="default",
        pool="prefork",
        concurrency=concurrency,
        loglevel=settings.log_level,
    )


def beat(settings: Settings) -> list[str]:
    """The schedule (sweeps, wait notices, nightly reindex): exactly one per deployment."""
    return [*CELERY, "beat", "--loglevel", settings.log_level]


def processes(settings: Settings, shape: Shape = SINGLE_HOST) -> list[Process]:
    """The long-running processes, in start order."""
    table = [
        Process(
            "web",
            tuple(web(settings, host=shape.host, port=shape.port, workers=shape.web_workers)),
            "WeChat/WeCom callbacks, the APIs, the admin pages; FAQ hits answered at once",
        )
    ]
    for i in range(1, shape.llm_workers + 1):
        table.append(
            Process(
                "llm" if shape.llm_workers == 1 else f"llm{i}",
                tuple(llm_worker(settings, index=i)),
                f"answers and /v1 jobs: one model, -c = 2 x LLM_PARALLEL ({settings.llm_parallel})",
            )
        )
    table.append(
        Process(
            "worker",
            tuple(default_worker(settings, concurrency=shape.default_concurrency)),
            "indexing uploads, reindex, the sweeps (no model)",
        )
    )
    table.append(Process("beat", tuple(beat(settings)), "the schedule: one per deployment"))
    return table


def setup_steps() -> list[Process]:
    """What runs once before the processes start (every deploy; both are idempotent)."""
    return [
        Process("migrate", (*FLASK, "db", "upgrade"), "applying database migrations"),
        Process(
            "ingest",
            (*FLASK, "kb", "ingest", "--if-empty"),
            "indexing the knowledge base (first run only)",
        ),
    ]


def milvus_address(settings: Settings) -> tuple[str, int] | None:
    """MILVUS_URI's host and port where an embedded milvus-lite server may serve it."""
    parts = urlsplit(settings.milvus_uri)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        return None
    return parts.hostname, parts.port


def milvus_lite(settings: Settings) -> Process | None:
    """The embedded Milvus for a loopback MILVUS_URI (data in $DATA_DIR/milvus), else None."""
    address = milvus_address(settings)
    if address is None:
        return None
    argv = milvus_server.command(settings.data_dir / "milvus", *address)
    return Process(
        "milvus",
        ("python", *argv[1:]),  # command() names this interpreter; resolve() does that here
        "milvus-lite's server, shared by every process",
    )


def simulator(port: int) -> Process:
    """Demo mode (no WeChat account): the simulator plays WeChat's servers."""
    return Process(
        "simulator",
        (*FLASK, "wechat", "simulator", "--port", str(port)),
        "demo mode: WeChat's servers, simulated",
    )


def kf_simulator(port: int) -> Process:
    """Demo mode (no 微信客服 account): the simulator plays 微信客服 (the kf API), notifying
    the service's /kf after each customer action (``flask kf simulate``)."""
    return Process(
        "kf-simulator",
        (*FLASK, "kf", "simulator", "--port", str(port)),
        "demo mode: 微信客服's servers, simulated",
    )


def procfile(settings: Settings, shape: Shape, bin_dir: Path | None = None) -> str:
    """The processes as a Procfile, each line after a comment saying what it is for."""
    lines = [
        f"# The service's processes (app/layout.py) for {shape}.",
        "# Before starting them, on every deploy: "
        + " && ".join(step.command(bin_dir) for step in setup_steps()),
    ]
    for proc in processes(settings, shape):
        lines += [f"# {proc.name}: {proc.why}", f"{proc.name}: {proc.command(bin_dir)}"]
    milvus = milvus_lite(settings)
    if milvus is not None:
        lines += [
            f"# MILVUS_URI is loopback: uncomment where nothing listens there yet ({milvus.why})",
            f"# {milvus.name}: {milvus.command(bin_dir)}",
        ]
    return "\n".join(lines)


layout_cli = AppGroup("layout", help="The service's processes and their commands.")


@layout_cli.command("procfile")
@click.option(
    "--container",
    is_flag=True,
    help=f"The shape docker/compose.yml runs ({CONTAINER.host}, {CONTAINER.web_workers} web "
    "workers) instead of `flask serve`'s.",
)
@click.option(
    "--absolute",
    is_flag=True,
    help="Programs by their path in this Python's environment (systemd units, cron).",
)
def procfile_command(container: bool, absolute: bool) -> None:
    """Print the processes as a Procfile, for this configuration (LLM_PARALLEL, LOG_LEVEL…)."""
    shape = CONTAINER if container else SINGLE_HOST
    bin_dir = Path(sys.executable).parent if absolute else None
    click.echo(procfile(current_app.extensions["settings"], shape, bin_dir))
