"""tests/job: reuse tests/flink/flinkjob.py (pytest runs with --import-mode=importlib)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flink"))
