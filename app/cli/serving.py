"""`flask serve`: everything in the foreground (app/supervisor.py does the work)."""

from __future__ import annotations

import sys

import click

from app.cli.common import app_settings
from app.simulator import DEMO_KF_SIMULATOR_PORT


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--web-workers", default=2, show_default=True)
@click.option("--llm-workers", default=1, show_default=True)
@click.option(
    "--simulator-port",
    default=9100,
    show_default=True,
    help="where demo mode runs the WeChat simulator",
)
@click.option(
    "--kf-simulator-port",
    default=DEMO_KF_SIMULATOR_PORT,
    show_default=True,
    help="where demo mode runs the 微信客服 simulator (when no 微信客服 account is configured)",
)
def serve(
    host: str,
    port: int,
    web_workers: int,
    llm_workers: int,
    simulator_port: int,
    kf_simulator_port: int,
) -> None:
    """Run everything in the foreground: Milvus, web, workers, scheduler. Ctrl-C stops all."""
    from app.supervisor import run_all

    sys.exit(
        run_all(
            app_settings(),
            host=host,
            port=port,
            web_workers=web_workers,
            llm_workers=llm_workers,
            simulator_port=simulator_port,
            kf_simulator_port=kf_simulator_port,
        )
    )
