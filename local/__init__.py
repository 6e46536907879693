"""The local stack: never deployed. Emulates API Gateway (HTTP API, payload v2) from template.yaml.

Like Lambda, which puts the SharedLayer's `python/` folder on the path, the local tools import the
`clinicpay` package from the layer folder.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "shared" / "python")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
