"""Flink configuration: the project's ``conf/config.yaml`` for embedded runs too."""

from __future__ import annotations

import os

from pyflink.common import Configuration


def load_config(path: str | None) -> Configuration:
    """The settings of a Flink ``config.yaml`` (Flink 2 nested YAML), parsed by Flink itself.

    ``path`` may name the file or its directory; ``None`` gives an empty Configuration (under
    ``flink run``, the cluster's own applies). Loading goes through Java's ``GlobalConfiguration``
    so the file means exactly what it means to ``start-cluster.sh``.
    """
    if not path:
        return Configuration()
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    j_conf = jvm.org.apache.flink.configuration.GlobalConfiguration.loadConfiguration(
        config_dir(path)
    )
    return Configuration(j_configuration=j_conf)


def config_dir(path: str) -> str:
    """The directory of a Flink ``config.yaml`` named by its path or its directory's."""
    conf_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.exists(os.path.join(conf_dir, "config.yaml")):
        raise FileNotFoundError(f"no Flink config.yaml at {path}")
    return conf_dir
