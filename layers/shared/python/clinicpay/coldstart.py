"""The cyclic garbage collector waits while a handler module loads.

A handler's import makes some hundred thousand objects (modules, classes, functions, pydantic field
infos) and none of them is garbage, yet every 700 allocations start a collection, and the older
generations' ones walk everything loaded so far: a tenth of a handler's import time went to
collections that freed nothing (bench/import_time.py prints the import with and without).

Importing this module pauses the collector: each handler imports it before anything else. `loaded()`,
the handler module's last statement, resumes it and freezes what is loaded (`gc.freeze`): those
objects live as long as the container, and no later collection, on a warm request either, walks
them again. Reference counting frees everything else as always; the pause covers the import only.
What a function loads on first use (a route group, a route's validation) gets the same pause:
`api.route_groups.collector_paused`.
"""

import gc

# A process that loads several handlers (tests, `make run`) pauses for the first one only, and a
# collector someone else turned off stays off.
_resume = gc.isenabled()
gc.disable()


def loaded() -> None:
    """The handler module has loaded: resume collecting, without ever walking what it loaded."""
    gc.freeze()
    if _resume:
        gc.enable()
