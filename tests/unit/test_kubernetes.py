"""docker/kubernetes/: the cluster manifests validate against Kubernetes' own schemas (the
kubernetes-validate package carries them, strict: an unknown field is an error), run the
process table's commands (app/layout.py), and keep the rules the service depends on: one
beat, probes that do not unroute every pod when a shared dependency is down, a disk that
outlives a web pod for its spool, the llm workers on a GPU and scaled on their queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app import layout
from app.settings import Settings
from tests.support import ROOT

KUBE = ROOT / "docker" / "kubernetes"
#: The oldest Kubernetes still commonly run, and the newest the package knows.
VERSIONS = ("1.29.0", "1.37.0")
#: The Deployment or StatefulSet of each role of the table.
WORKLOADS = {
    "web": "wxcs-web",
    "llm": "wxcs-llm-worker",
    "worker": "wxcs-worker",
    "beat": "wxcs-beat",
}

#: The part of KEDA's ScaledObject (keda.sh/v1alpha1) these manifests use, written from
#: KEDA's reference (ScaledObject specification, Redis Lists scaler): a misspelt field or
#: trigger setting is an error rather than silently ignored by KEDA.
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": {"type": "object"},
                            # KEDA reads every trigger setting as a string.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
#: The Redis Lists scaler's settings (KEDA's reference).
REDIS_TRIGGER = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "username",
    "usernameFromEnv",
    "passwordFromEnv",
    "databaseIndex",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object the kustomization applies, and the secret's example, by (kind, name)."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    files = [KUBE / f for f in kustomization["resources"]] + [KUBE / "secret.example.yaml"]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in files:
        for doc in _documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _container(objects: dict, name: str) -> dict[str, Any]:
    kind = "StatefulSet" if name == "wxcs-web" else "Deployment"
    [container] = objects[(kind, name)]["spec"]["template"]["spec"]["containers"]
    return container


def test_every_file_is_applied_by_the_kustomization() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    # The secret is the operator's copy, applied by hand: never a file of ours with values.
    assert set(kustomization["resources"]) == on_disk - {"secret.example.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_manifests_validate_against_kubernetes_schemas(objects: dict, version: str) -> None:
    checked = 0
    for (kind, name), doc in objects.items():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind} {name} is invalid for Kubernetes {version}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_strict_validation_rejects_a_misspelt_field(objects: dict) -> None:
    """The validator the test above relies on does fail (it is not a no-op)."""
    beat = yaml.safe_load(yaml.safe_dump(objects[("Deployment", "wxcs-beat")]))
    beat["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(beat, VERSIONS[-1], strict=True)


def test_the_roles_run_the_process_table(objects: dict, defaults: Settings) -> None:
    table = {p.name: list(p.argv) for p in layout.processes(defaults, layout.CONTAINER)}
    assert set(table) == set(WORKLOADS)
    for role, workload in WORKLOADS.items():
        assert _container(objects, workload)["command"] == table[role], (
            f"docker/kubernetes's {workload} is not the table's {role}: "
            f"run `flask --app app layout procfile --container` and copy its command"
        )
    [migrate] = objects[("Job", "wxcs-migrate")]["spec"]["template"]["spec"]["containers"]
    steps = " && ".join(" ".join(step.argv) for step in layout.setup_steps())
    assert migrate["command"] == ["sh", "-c", steps]


def test_exactly_one_beat(objects: dict) -> None:
    beat = objects[("Deployment", "wxcs-beat")]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}  # never two during a rollout
    scaled = {
        o["spec"]["scaleTargetRef"]["name"] for (k, _), o in objects.items() if k == "ScaledObject"
    }
    assert "wxcs-beat" not in scaled


def test_probes_read_livez_and_the_spool_outlives_the_pod(objects: dict) -> None:
    web = _container(objects, "wxcs-web")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert web[probe]["httpGet"]["path"] == "/livez"
    statefulset = objects[("StatefulSet", "wxcs-web")]["spec"]
    [claim] = statefulset["volumeClaimTemplates"]
    data_dir = objects[("ConfigMap", "wxcs-config")]["data"]["DATA_DIR"]
    assert {"name": claim["metadata"]["name"], "mountPath": data_dir} in web["volumeMounts"]


def test_the_llm_workers_take_a_gpu_and_offload_every_layer(objects: dict) -> None:
    llm = _container(objects, "wxcs-llm-worker")
    assert llm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert objects[("ConfigMap", "wxcs-config")]["data"]["LLM_N_GPU_LAYERS"] == "-1"


def test_workers_scale_on_their_celery_queue(objects: dict) -> None:
    scaled = {n: o for (k, n), o in objects.items() if k == "ScaledObject"}
    queues = {"wxcs-llm-worker": layout.LLM_QUEUE, "wxcs-worker": layout.DEFAULT_QUEUE}
    assert {o["spec"]["scaleTargetRef"]["name"] for o in scaled.values()} == set(queues)
    config = objects[("ConfigMap", "wxcs-config")]["data"]
    for obj in scaled.values():
        jsonschema.validate(obj, SCALED_OBJECT)
        assert obj["spec"]["minReplicaCount"] >= 1  # a model load is no wait for a customer
        [trigger] = obj["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert set(trigger["metadata"]) <= REDIS_TRIGGER
        assert trigger["metadata"]["listName"] == queues[obj["spec"]["scaleTargetRef"]["name"]]
        assert trigger["metadata"]["addressFromEnv"] in config


def test_configuration_names_are_settings(objects: dict) -> None:
    """A misspelt setting would be ignored silently: every name is one the service reads
    (or one the manifests themselves use)."""
    known = {n.upper() for n in Settings.model_fields} | {
        "PROMETHEUS_MULTIPROC_DIR",  # prometheus_client's own
        "REDIS_ADDRESS",  # the autoscalers'
    }
    config = objects[("ConfigMap", "wxcs-config")]["data"]
    secret = objects[("Secret", "wxcs-secrets")]["stringData"]
    assert set(config) | set(secret) <= known
    assert {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"} <= set(secret)
