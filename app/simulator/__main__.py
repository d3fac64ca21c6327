"""``python -m app.simulator``: the ``flask wechat`` commands without loading the service."""

from .cli import wechat

wechat(prog_name="python -m app.simulator")
