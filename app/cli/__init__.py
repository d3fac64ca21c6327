"""`flask` commands: knowledge base, models, the all-in-one `serve`, the WeChat simulator.

One module per group: kb.py (`flask kb`), accounts.py (`flask user`, `flask apikey`),
model.py (`flask model`), serving.py (`flask serve`), common.py what they share; `faq`,
`settings`, `layout` and the simulators' groups live beside what they run."""

from __future__ import annotations

from flask import Flask

from app.cli.serving import serve

__all__ = ["register_commands", "serve"]


def register_commands(app: Flask) -> None:
    from app.cli.accounts import apikey, user
    from app.cli.kb import kb
    from app.cli.model import model
    from app.faq.commands import faq
    from app.layout import layout_cli
    from app.settings.readme import settings_cli

    app.cli.add_command(faq)
    app.cli.add_command(settings_cli)
    app.cli.add_command(kb)
    app.cli.add_command(apikey)
    app.cli.add_command(model)
    app.cli.add_command(user)
    app.cli.add_command(serve)
    app.cli.add_command(layout_cli)
    try:
        from app.simulator.cli import wechat
        from app.simulator.kf_cli import kf
        from app.simulator.wecom_cli import wecom
    except ImportError:  # the simulator is optional tooling
        return
    app.cli.add_command(wechat)
    app.cli.add_command(wecom)
    app.cli.add_command(kf)
