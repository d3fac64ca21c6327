"""The process layout is written once (app/layout.py): `flask serve`, docker/compose.yml,
the Dockerfile, the README and the end-to-end tests take their commands from it, or are
compared with it here, so that they cannot drift apart again (they once disagreed on the
web tier's threads, the default worker's concurrency, worker names and log levels)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from honcho.environ import parse_procfile

from app import layout, supervisor
from app.cli import serve
from app.settings import Settings
from tests.support import BIN, ROOT, worker_args

COMPOSE = ROOT / "docker" / "compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
README = ROOT / "README.md"
#: docker/compose.yml's service for each role of the table.
COMPOSE_SERVICES = {"web": "web", "llm": "llm-worker", "worker": "worker", "beat": "beat"}


def _argv(settings: Settings, shape: layout.Shape) -> dict[str, list[str]]:
    return {p.name: list(p.argv) for p in layout.processes(settings, shape)}


def test_the_roles_as_production_runs_them(defaults: Settings) -> None:
    table = _argv(defaults, layout.CONTAINER)
    assert list(table) == ["web", "llm", "worker", "beat"]
    web = " ".join(table["web"])
    assert "--bind 0.0.0.0:8000 --workers 4 --worker-class gthread --threads 8" in web
    llm = " ".join(table["llm"])
    assert "-Q llm --pool threads -c 8 -n llm1@%h --loglevel INFO" in llm  # 2 x LLM_PARALLEL
    assert "-Q default --pool prefork -c 2" in " ".join(table["worker"])
    assert table["beat"] == ["celery", "-A", "app.worker", "beat", "--loglevel", "INFO"]


def test_the_commands_follow_the_settings(defaults: Settings) -> None:
    settings = defaults.model_copy(
        update={"llm_parallel": 6, "log_level": "WARNING", "wechat_passive_max_held": 20}
    )
    table = _argv(settings, layout.Shape(llm_workers=2))
    assert list(table) == ["web", "llm1", "llm2", "worker", "beat"]
    assert "--threads 22" in " ".join(table["web"])  # two free beside 20 held tries
    assert "-c 12 -n llm2@%h --loglevel WARNING" in " ".join(table["llm2"])
    assert table["beat"][-2:] == ["--loglevel", "WARNING"]


def test_compose_runs_the_table(defaults: Settings) -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    for role, argv in _argv(defaults, layout.CONTAINER).items():
        assert services[COMPOSE_SERVICES[role]]["command"] == argv, (
            f"docker/compose.yml's {COMPOSE_SERVICES[role]} is not the table's {role}: "
            "`flask --app app layout procfile --container`"
        )
    steps = " && ".join(step.command() for step in layout.setup_steps())
    assert services["migrate"]["command"] == ["sh", "-c", steps]
    assert services["migrate"]["restart"] == "no"
    for name in COMPOSE_SERVICES.values():
        assert services[name]["restart"] == "unless-stopped", name


def test_compose_keeps_metrics_in_memory_and_shared_by_the_app_containers() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    folders = {
        services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        for name in COMPOSE_SERVICES.values()
    }
    assert len(folders) == 1, folders  # one folder: the web's /metrics sums every container
    (folder,) = folders
    assert not folder.startswith("/data"), "the data volume outlives every container"
    for name in COMPOSE_SERVICES.values():
        mounts = dict(v.split(":", 1)[::-1] for v in services[name]["volumes"])
        volume = compose["volumes"][mounts[folder]]
        assert volume["driver_opts"]["type"] == "tmpfs", name


def test_the_image_runs_the_web_role(defaults: Settings) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", "")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, flags=re.M)
    assert json.loads(cmd) == _argv(defaults, layout.CONTAINER)["web"]


def test_the_readme_shows_the_table_and_no_other_command(defaults: Settings) -> None:
    readme = README.read_text(encoding="utf-8")
    commands = [shlex.join(argv) for argv in _argv(defaults, layout.CONTAINER).values()]
    for command in commands:
        assert f"`{command}`" in readme, command
    shown = re.findall(r"`((?:gunicorn|celery) [^`]*)`", readme)
    assert sorted(set(shown)) == sorted(commands), "README.md describes other processes"


def test_procfile_is_the_table(defaults: Settings) -> None:
    text = layout.procfile(defaults, layout.SINGLE_HOST, BIN)
    parsed = parse_procfile(text).processes
    expected = {p.name: p.command(BIN) for p in layout.processes(defaults)}
    assert parsed == expected  # the milvus-lite line stays a comment
    assert "# milvus: " in text  # the default MILVUS_URI is loopback


def test_procfile_command_prints_the_container_shape(defaults: Settings) -> None:
    from app import create_app

    app = create_app(defaults)
    result = app.test_cli_runner().invoke(args=["layout", "procfile", "--container"])
    assert result.exit_code == 0, result.output
    web = layout.processes(defaults, layout.CONTAINER)[0]
    assert f"web: {web.command()}" in result.output.splitlines()


def test_serve_defaults_are_the_single_host_shape() -> None:
    options = {p.name: p.default for p in serve.params}
    shape = layout.SINGLE_HOST
    assert (options["host"], options["port"]) == (shape.host, shape.port)
    assert options["web_workers"] == shape.web_workers
    assert options["llm_workers"] == shape.llm_workers


def test_serve_runs_the_table(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    added: dict[str, str] = {}
    ran: list[list[str]] = []

    class Manager:
        returncode = 0

        def add_process(self, name: str, command: str, env: dict[str, str]) -> None:
            added[name] = command

        def loop(self) -> None:
            pass

    monkeypatch.setattr(supervisor, "Manager", Manager)
    monkeypatch.setattr(supervisor.subprocess, "run", lambda argv, **kw: ran.append(argv))
    settings = defaults.model_copy(
        update={
            "wechat_token": "t0ken",
            "wechat_app_id": "wx0123456789abcdef",
            "wechat_app_secret": "s",
            "milvus_uri": "http://milvus.internal:19530",  # no embedded server
            "data_dir": tmp_path,
        }
    )
    assert supervisor.run_all(
        settings, host="127.0.0.1", port=8123, web_workers=3, llm_workers=2, simulator_port=9
    ) == 0
    shape = layout.Shape(port=8123, web_workers=3, llm_workers=2)
    assert added == {p.name: p.command(supervisor.BIN) for p in layout.processes(settings, shape)}
    assert ran == [layout.resolve(s.argv, supervisor.BIN) for s in layout.setup_steps()]


def test_the_tests_worker_is_the_tables_on_both_queues() -> None:
    argv = worker_args("stack", 3, "threads")
    assert argv[1:] == layout.celery_worker(
        ["llm", "default"], name="stack", pool="threads", concurrency=3, loglevel="INFO"
    )[1:]


def test_demo_mode_starts_the_wechat_and_kf_simulators(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No WeChat account and no 微信客服 one: both simulators start, and every process of
    the service gets the demo credentials and the simulators' addresses."""
    from app.simulator import DEMO_KF, DEMO_WECHAT

    started: list[tuple[list[str], dict[str, str]]] = []
    envs: list[dict[str, str]] = []

    class Popen:
        def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
            started.append((argv, dict(env or {})))

        def terminate(self) -> None: ...

        def wait(self, timeout: float) -> int:
            return 0

    class Manager:
        returncode = 0

        def add_process(self, name: str, command: str, env: dict[str, str]) -> None:
            envs.append(env)

        def loop(self) -> None:
            pass

    monkeypatch.setattr(supervisor, "Manager", Manager)
    monkeypatch.setattr(supervisor.subprocess, "Popen", Popen)
    monkeypatch.setattr(supervisor.subprocess, "run", lambda argv, **kw: None)
    monkeypatch.setattr(supervisor, "_wait_port", lambda *args, **kwargs: None)
    settings = defaults.model_copy(
        update={"milvus_uri": "http://milvus.internal:19530", "data_dir": tmp_path}
    )
    assert supervisor.run_all(
        settings,
        host="127.0.0.1",
        port=8123,
        web_workers=1,
        llm_workers=1,
        simulator_port=9101,
        kf_simulator_port=9301,
    ) == 0
    argvs = [argv for argv, _ in started]
    assert argvs == [
        layout.resolve(layout.simulator(9101).argv, supervisor.BIN),
        layout.resolve(layout.kf_simulator(9301).argv, supervisor.BIN),
    ]
    kf_env = started[1][1]
    assert kf_env["PUBLIC_BASE_URL"] == "http://127.0.0.1:8123"  # it notifies our /kf
    for env in envs:
        assert {k: env[k] for k in DEMO_KF} == DEMO_KF
        assert {k: env[k] for k in DEMO_WECHAT} == DEMO_WECHAT
        assert env["KF_API_BASE_URL"] == "http://127.0.0.1:9301"
    options = {p.name: p.default for p in serve.params}
    assert options["kf_simulator_port"] == 9300
