"""The base of every pydantic model of ours (domain, ports, provider schemas, request bodies).

`defer_build`: a model's validator and serializer are built when it is first used, not when its
class is defined, so a function pays only for the models its requests touch (cold start,
bench/import_time.py). Field definitions are still read when the class is defined. With SnapStart
every model loaded by then is built before the snapshot (clinicpay.snapstart).
"""

from pydantic import BaseModel, ConfigDict

from clinicpay.snapstart import before_snapshot, load_named_modules


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


def build_loaded_models() -> None:
    """Build every model defined so far whose build was deferred, after importing the modules named
    to be loaded on first use (snapstart.load_before_snapshot: the ports' modules, ...)."""
    load_named_modules()
    pending: list[type[BaseModel]] = [Model]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if not model.__pydantic_complete__:
            model.model_rebuild()


before_snapshot(build_loaded_models)
