"""The job's graph as it would run, without running it: its operators, and which run Python.

    python -m job.graph [any job/main.py option]      # one line per operator, then the count

Built by ``job.main.build`` with the same options, read from Flink's StreamGraph after PyFlink
prepared it (its Python operators configured and chained), so what is listed is what runs. Every
Python operator costs a JVM-Python crossing per record and timers when idle: the job means to
have exactly one, the bridge.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment


class Operator(NamedTuple):
    name: str
    java_class: str

    @property
    def python(self) -> bool:
        return "python" in self.java_class.lower()


def operators(env: StreamExecutionEnvironment) -> list[Operator]:
    """The operators of ``env``'s graph, its transformations kept so that it can still run."""
    graph = env._generate_stream_graph(clear_transformations=False)
    nodes, iterator = [], graph.getStreamNodes().iterator()
    while iterator.hasNext():
        nodes.append(iterator.next())
    out = []
    for node in sorted(nodes, key=lambda n: n.getId()):
        factory = node.getOperatorFactory()
        try:
            java_class = factory.getOperator().getClass().getName()
        except Exception:  # sources and sinks come as factories without an operator instance
            java_class = factory.getClass().getName()
        out.append(Operator(node.getOperatorName(), java_class))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from pyflink.datastream import StreamExecutionEnvironment

    from job.main import build, flink_config, parse_args

    args = parse_args(argv)
    env = StreamExecutionEnvironment.get_execution_environment(flink_config(args, local=True))
    build(env, args, args.ws_url)
    found = operators(env)
    for operator in found:
        print(
            f"{'python' if operator.python else 'java  '}  {operator.name}  ({operator.java_class})"
        )
    print(f"{sum(o.python for o in found)} Python operator(s) of {len(found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
