"""Leaves botocore (in a built layer) only the data of the services the relay creates clients for.

    python prune_botocore.py LAYER_DIR SERVICE...

botocore carries the models of about 400 services, and creating a client lists them all (~25 ms of a cold start;
26 MB of the layer). Its endpoints.json (1.2 MB) names every service in every partition and is read whole when the
first client is created (~30 ms of a cold start); the services used keep their entries, in every partition.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def prune(botocore_data: Path, services: set[str]) -> None:
    for model in botocore_data.iterdir():
        if model.is_dir() and model.name not in services:
            shutil.rmtree(model)
    endpoints_file = botocore_data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {name: entry for name, entry in partition["services"].items() if name in services}
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":")))


if __name__ == "__main__":
    prune(Path(sys.argv[1]) / "botocore" / "data", set(sys.argv[2:]))
