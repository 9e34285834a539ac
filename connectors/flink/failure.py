"""Failing a job for good from a Python operator, when a restart would fail the same way.

Flink restarts a failed job by its restart strategy unless the failure's Java cause chain holds a
``NonRecoverableError`` such as ``SuppressRestartsException``. A Python exception never carries
one: pemja (thread mode) and Beam (process mode) turn it into text. In thread mode the operator
runs inside the TaskManager's JVM, so it can hand that exception to its task directly
(``Environment.failExternally``), which PyFlink 2.3 does not expose: the task environment is read
from a private field of ``StreamingRuntimeContext``, through PyFlink's private ``_runtime_context``.
Both are internals a later release may change: when anything here fails, the caller's ordinary
exception still fails the job into a restart. Call it from the operator's own thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyflink.datastream import RuntimeContext

log = logging.getLogger(__name__)


def fail_for_good(runtime_context: RuntimeContext, reason: str) -> bool:
    """Fails the job without restarts; False where that is not possible (process mode)."""
    j_context = getattr(runtime_context, "_runtime_context", None)
    if j_context is None or not hasattr(j_context, "getClass"):
        log.warning("cannot stop restarts in process mode; the job will restart: %s", reason)
        return False
    try:
        from pemja import findClass

        field = (
            findClass("java.lang.Class")
            .forName("org.apache.flink.streaming.api.operators.StreamingRuntimeContext")
            .getDeclaredField("taskEnvironment")
        )
        field.setAccessible(True)
        cause = findClass("org.apache.flink.util.FlinkRuntimeException")(reason)
        field.get(j_context).failExternally(
            findClass("org.apache.flink.runtime.execution.SuppressRestartsException")(cause)
        )
    except Exception:
        log.exception("could not stop restarts; the job will restart: %s", reason)
        return False
    return True
