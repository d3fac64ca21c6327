"""Flask extensions, each attached with init_app so the factory stays declarative."""

from __future__ import annotations

import logging

from celery import Celery, Task
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase

from app.settings import PROJECT_ROOT, Settings, cron_schedule

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate(directory=str(PROJECT_ROOT / "migrations"))


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db)
    with app.app_context():
        if db.engine.url.get_backend_name() == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
    init_celery(app)
    from app import metrics

    metrics.init_app(app)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the web process read while a worker writes.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def init_celery(app: Flask) -> Celery:
    """Celery whose tasks always run inside the Flask app context."""
    settings: Settings = app.extensions["settings"]

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    if settings.celery_broker_url.startswith(("redis://", "rediss://")):
        from app import broker_reconnect

        broker_reconnect.install()
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(settings))
    celery.set_default()
    app.extensions["celery"] = celery
    _check_pool_on_start(settings)
    _take_back_dead_claims_on_start(app)
    return celery


def _check_pool_on_start(settings: Settings) -> None:
    from celery.signals import worker_init

    def check(sender: object = None, **_: object) -> None:
        from app.store import pool

        raw = getattr(sender, "concurrency", 1)
        concurrency = raw if isinstance(raw, int) else 1  # "auto": resolved later, per CPU
        pool_cls = getattr(sender, "pool_cls", "prefork")
        name = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
        name = name.rsplit(".", 1)[-1]  # celery.concurrency.thread -> thread
        try:
            pool.check(settings, concurrency, name)
        except pool.PoolTooSmall as exc:
            # Celery logs and swallows a handler's exceptions: exit, saying why.
            raise SystemExit(f"worker not started: {exc}") from exc

    worker_init.connect(check, weak=False, dispatch_uid="db-pool-check")


def _take_back_dead_claims_on_start(app: Flask) -> None:
    """A worker that starts where another died answers the dead one's messages now, not
    when their leases lapse (app/messages/claims.py). The threads pool answers in the
    worker's own process; a prefork child that dies is covered by the lease."""
    from celery.signals import worker_ready

    def take_back(**_: object) -> None:
        from app.messages import claims, inbound

        try:
            with app.app_context():
                claims.release_dead(inbound.enqueue_answer)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - the lease and the sweeper still cover it
            log.warning("could not take back dead workers' claims: %s", exc)

    worker_ready.connect(take_back, weak=False, dispatch_uid="dead-claims")


def _use_wal(path: str) -> None:
    """WAL (persistent in the file) lets publishers and the polling worker overlap; kombu's
    own engine leaves the rollback journal, which collapsed at 200 messages/s (bench/)."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def celery_config(settings: Settings) -> dict:
    conf: dict = {
        "broker_url": settings.celery_broker_url,
        "task_ignore_result": True,
        "result_backend": None,
        # A message is acknowledged only after its task finished: a worker that dies
        # mid-answer leaves it on the queue for another worker (the task is idempotent).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": "default",
        "task_routes": {
            "app.tasks.answer_message": {"queue": "llm"},
            "app.tasks.llm_api_job": {"queue": "llm"},
            "app.tasks.sweep_unanswered": {"queue": "default"},
            "app.tasks.notify_waiting": {"queue": "default"},
        },
        "beat_schedule": {
            "sweep-unanswered": {
                "task": "app.tasks.sweep_unanswered",
                "schedule": settings.answer_sweep_every_s,
            },
            "notify-waiting": {"task": "app.tasks.notify_waiting", "schedule": 15.0},
            "sweep-knowledge": {"task": "app.tasks.sweep_knowledge", "schedule": 60.0},
        },
        "imports": ["app.tasks"],
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }
    # Knowledge base (issue 4): indexing and reindex run on the default queue.
    conf["task_routes"]["app.tasks.index_document"] = {"queue": "default"}
    conf["task_routes"]["app.tasks.reindex_knowledge"] = {"queue": "default"}
    conf["task_routes"]["app.tasks.sweep_knowledge"] = {"queue": "default"}
    # 微信客服 (issue 17): its syncs on the default queue (a welcome code lasts 20 s), and
    # every known account read again now and then, in case a callback was lost.
    conf["task_routes"]["app.tasks.sync_kf"] = {"queue": "default"}
    conf["task_routes"]["app.tasks.sync_kf_accounts"] = {"queue": "default"}
    if settings.kf_configured:
        from app.channels.kf import SAFETY_SYNC_EVERY_S

        conf["beat_schedule"]["kf-sync-accounts"] = {
            "task": "app.tasks.sync_kf_accounts",
            "schedule": SAFETY_SYNC_EVERY_S,
        }
    if settings.kb_reindex_cron:
        conf["beat_schedule"]["kb-reindex"] = {
            "task": "app.tasks.reindex_knowledge",
            "schedule": cron_schedule(settings.kb_reindex_cron),
            "kwargs": {"trigger": "beat"},
        }
    if settings.embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # kombu's SQLAlchemy transport hands every transport option to create_engine, so
        # the poll interval (default 1 s, a second of latency per answer) is set on the class.
        from kombu.transport import sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = 0.25
        _use_wal(settings.celery_broker_url.removeprefix("sqla+sqlite:///"))
        conf["broker_transport_options"] = {"connect_args": {"timeout": 30}}
    else:
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    if settings.celery_broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # After a lost connection Celery lowers the prefetch count and raises it again as
        # each interrupted task is acknowledged, from the thread that ran it: on the threads
        # pool (the llm role) that basic.qos reads the socket the main thread reads, which
        # broke the connection again (UnexpectedFrame) or left acknowledged tasks counted as
        # unacknowledged, and the worker stopped taking tasks (tests/e2e/test_rabbitmq.py:
        # 3 of 4 runs). Without it a worker may take up to its concurrency more tasks while
        # it finishes the interrupted ones.
        conf["worker_enable_prefetch_count_reduction"] = False
    return conf
