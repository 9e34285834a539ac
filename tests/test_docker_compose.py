"""docker-compose.yml, checked as far as possible without a Docker engine: a compose implementation
validates it, and everything it names (files, ports, config keys, commands) exists in the
project."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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


def test_compose_file_is_valid_and_complete():
    services = compose_config()["services"]
    assert set(services) == {"jobmanager", "taskmanager", "simulator", "prometheus"}
    for name in ("jobmanager", "taskmanager", "simulator"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["jobmanager"]["command"] == "jobmanager"
    assert services["taskmanager"]["command"] == "taskmanager"
    rest_port = flink_conf()["rest"]["port"]
    assert [p["target"] for p in services["jobmanager"]["ports"]] == [rest_port]


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
    assert [str(p["target"]) for p in compose_config()["services"]["simulator"]["ports"]] == [port]


def test_prometheus_service_uses_the_projects_config_and_scrapes_both_daemons():
    service = compose_config()["services"]["prometheus"]
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
    reporter_port = int(str(flink_conf()["metrics"]["reporter"]["prom"]["port"]).split("-")[0])
    assert {f"jobmanager:{reporter_port}", f"taskmanager:{reporter_port}"} <= targets
    assert all((ROOT / "conf" / "prometheus" / rules).is_file() for rules in scrape["rule_files"])
