"""gunicorn_conf.py: what every worker inherits from the master's garbage collector
(`when_ready`), and the log configuration gunicorn applies (`logconfig_dict`).

Run in a child interpreter: the hook freezes and retunes the collector of the whole process,
and dictConfig rewires its loggers.
"""

import json
import os
import subprocess
import sys
from collections.abc import Mapping

_PROBE = """
import gc, json
import serving.gunicorn_conf as conf
conf.when_ready(None)
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def _collector_after_when_ready(**env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**_without_gc_setting(os.environ), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _without_gc_setting(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key != "SERVING_GC_THRESHOLD"}


def test_the_master_freezes_its_objects_and_raises_the_young_generation_threshold() -> None:
    default = _collector_after_when_ready()
    configured = _collector_after_when_ready(SERVING_GC_THRESHOLD="12345")

    assert default["threshold"] == [50_000, 10, 10]  # older generations keep Python's default
    assert configured["threshold"] == [12345, 10, 10]
    assert isinstance(default["frozen"], int) and default["frozen"] > 10_000


_LOG_PROBE = """
import logging, logging.config
import serving.gunicorn_conf as conf
logging.config.dictConfig(conf.logconfig_dict)
logging.getLogger("gunicorn.error").info("Booting worker with pid: %d", 42)
logging.getLogger("gunicorn.access").info("an access line gunicorn must not write")
logging.getLogger("uvicorn.error").warning("Waiting for application startup.")
"""


def test_gunicorn_and_uvicorn_lines_are_one_json_object_each_on_stderr() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOG_PROBE],
        env=_without_gc_setting(os.environ),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["logger"], r["msg"]) for r in records] == [
        ("gunicorn.error", "Booting worker with pid: 42"),
        ("uvicorn.error", "Waiting for application startup."),
    ]
    assert done.stdout == ""
