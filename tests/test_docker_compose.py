"""docker-compose.yml, checked as far as possible without a Docker engine: a compose implementation
validates it, and everything it names (files, ports, config keys, commands) exists in the
project."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (what a port without a host address binds)


def compose_config() -> dict:
    tool = shutil.which("docker-compose")
    assert tool, (
        "docker-compose (Debian package docker-compose) is needed to validate docker-compose.yml"
    )
    result = subprocess.run(
        [tool, "config"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def flink_conf() -> dict:
    return yaml.safe_load((ROOT / "conf/config.yaml").read_text())


def published(service: dict) -> list[tuple[str, int]]:
    """``(host address, container port)`` of each published port, in either form
    docker-compose prints (``127.0.0.1:8081:8081/tcp``, or a mapping for a port without an
    address); no address means every interface of the host."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", EVERY_INTERFACE), int(port["target"])))
        else:
            *host, _published, target = port.split("/")[0].split(":")
            ports.append((host[0] if host else EVERY_INTERFACE, int(target)))
    return ports


def test_compose_file_is_valid_and_complete():
    services = compose_config()["services"]
    assert set(services) == {"jobmanager", "taskmanager", "simulator", "metrics", "prometheus"}
    for name in ("jobmanager", "taskmanager", "simulator", "metrics"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["jobmanager"]["command"] == "jobmanager"
    assert services["taskmanager"]["command"] == "taskmanager"
    rest_port = flink_conf()["rest"]["port"]
    assert [port for _, port in published(services["jobmanager"])] == [rest_port]


def test_every_published_port_listens_on_the_hosts_loopback_only():
    services = compose_config()["services"]
    ports = {name: published(service) for name, service in services.items()}
    assert sum(map(len, ports.values())) == 3  # the web UI, the simulator, Prometheus
    assert {name: [host for host, _ in p] for name, p in ports.items() if p} == {
        "jobmanager": ["127.0.0.1"],
        "simulator": ["127.0.0.1"],
        "prometheus": ["127.0.0.1"],
    }


def test_dockerfile_builds_from_official_flink_and_copies_what_exists():
    lines = (ROOT / "docker/Dockerfile").read_text().splitlines()
    assert any(line.startswith("FROM flink:2.3.0") for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_checkpoints_land_on_the_shared_volume():
    checkpoint_dir = flink_conf()["execution"]["checkpointing"]["dir"]
    services = compose_config()["services"]
    for name in ("jobmanager", "taskmanager"):
        mounts = [
            v["target"] if isinstance(v, dict) else v.split(":")[1]
            for v in services[name]["volumes"]
        ]
        assert any(checkpoint_dir.removeprefix("file://").startswith(m) for m in mounts), (
            name,
            mounts,
        )


def test_simulator_service_command_runs_here():
    command = compose_config()["services"]["simulator"]["command"]
    assert command[:3] == ["python", "-m", "connectors.simulator"]
    usage = subprocess.run(
        [sys.executable, "-m", "connectors.simulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 0, usage.stderr
    for flag in (arg for arg in command[3:] if arg.startswith("--")):
        assert flag in usage.stdout, f"simulator has no {flag}"
    port = command[command.index("--port") + 1]
    assert [str(p) for _, p in published(compose_config()["services"]["simulator"])] == [port]


def test_prometheus_scrapes_the_gateway_the_daemons_push_to():
    services = compose_config()["services"]
    service = services["prometheus"]
    (mount,) = service["volumes"]
    source, target = (
        (mount["source"], mount["target"]) if isinstance(mount, dict) else mount.split(":")[:2]
    )
    assert Path(source).resolve() == ROOT / "conf" / "prometheus" and target == "/etc/prometheus"
    config_file = service["command"][0].split("=", 1)[1]
    scrape = yaml.safe_load(
        (ROOT / "conf" / "prometheus" / Path(config_file).relative_to(target)).read_text()
    )
    targets = {
        t for group in scrape["scrape_configs"][0]["static_configs"] for t in group["targets"]
    }
    command = services["metrics"]["command"]
    assert command[:3] == ["python", "-m", "job.metrics_gateway"]
    gateway_port = command[command.index("--port") + 1]
    assert f"metrics:{gateway_port}" in targets
    for name in ("jobmanager", "taskmanager"):
        pushed_to = yaml.safe_load(services[name]["environment"]["FLINK_PROPERTIES"])
        assert pushed_to["metrics.reporter.prom.hostUrl"] == f"http://metrics:{gateway_port}"
    reporter = flink_conf()["metrics"]["reporter"]["prom"]
    assert reporter["factory.class"].endswith("PrometheusPushGatewayReporterFactory")
    assert all((ROOT / "conf" / "prometheus" / rules).is_file() for rules in scrape["rule_files"])
