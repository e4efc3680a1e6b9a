"""gwot's start-up cost: POT is imported with its NumPy backend only, so a pipeline task never loads torch."""

from __future__ import annotations

import json
import subprocess
import sys

FIT_IN_A_FRESH_PROCESS = """
import json, os, sys
from xmodal.families.paired._synthetic import synthetic_paired
from xmodal.methods.gwot import GWOT, GWOTConfig

data = synthetic_paired(n_cells=60, dim_a=8, dim_b=20, n_clusters=3, seed=0)
GWOT(GWOTConfig(max_iter=5, n_neighbors=10, anneal_steps=1, epsilon=0.05)).fit(data, seed=0)
print(json.dumps({"torch": "torch" in sys.modules, "ot": "ot" in sys.modules,
                  "env": sorted(k for k in os.environ if k.startswith("POT_BACKEND_DISABLE_"))}))
"""


def test_fitting_gwot_does_not_import_torch_and_restores_the_environment() -> None:
    out = subprocess.run([sys.executable, "-c", FIT_IN_A_FRESH_PROCESS], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ot"], "precondition: the fit used POT"
    assert not seen["torch"], "POT probed its PyTorch backend: ~2 s more start-up in every train task"
    assert seen["env"] == []
