"""The only Logger, Tracer and Metrics instances. Service name comes from POWERTOOLS_SERVICE_NAME.

The Tracer's provider is the X-Ray SDK's recorder, loaded on the first traced call instead of at
import: importing the SDK (and the patching it does) was a third of a bare handler's import time
(bench/import_time.py). When it loads it patches botocore, so every DynamoDB, Secrets Manager, SES and
SNS call is a subsegment as before, whichever client made it and whenever; provider calls are their
own subsegments (`providers/http.py`). An invocation X-Ray did not sample (Lambda says so in
`_X_AMZN_TRACE_ID`) records nothing, so it does not load the SDK at all. With SnapStart (published
versions, template.yaml) the recorder is loaded before the snapshot, so restored containers have it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from clinicpay.snapstart import before_snapshot

if TYPE_CHECKING:
    import numbers
    import traceback

# What the loaded SDK patches: boto3/botocore (every AWS call). Provider HTTP calls are traced by
# providers/http.py itself: the SDK's httplib patch misses urllib3 2's requests and, patched next to
# botocore, would record every AWS call twice.
PATCHED_MODULES = ("botocore",)


class _Unrecorded(BaseSegment):
    """The subsegment of an invocation X-Ray did not sample: accepts everything, keeps nothing."""

    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: list[traceback.StackSummary],
                      remote: bool = False) -> None:
        return None


class LazyXRayProvider(BaseProvider):
    """Powertools' tracing provider, backed by `aws_xray_sdk.core.xray_recorder` once a traced call
    needs it. Loading configures the recorder as Powertools does its own (no trace batching) and
    patches PATCHED_MODULES unless tracing is disabled (POWERTOOLS_TRACE_DISABLED, or not in Lambda)."""

    def __init__(self, modules: Sequence[str] = PATCHED_MODULES):
        self._modules = tuple(modules)
        self._recorder: Any = None
        self._lock = threading.Lock()
        # Tracing off (POWERTOOLS_TRACE_DISABLED, or not in Lambda: the Tracer decides): Powertools
        # still opens a subsegment for each traced call, which the SDK would build and throw away.
        self.disabled = False

    @property
    def loaded(self) -> bool:
        return self._recorder is not None

    def recorder(self) -> Any:
        if self._recorder is None:
            with self._lock:
                if self._recorder is None:
                    from aws_xray_sdk import global_sdk_config
                    from aws_xray_sdk.core import patch, xray_recorder

                    if global_sdk_config.sdk_enabled():
                        # Subsegments sent one by one, as Powertools configures its own provider (its #283).
                        xray_recorder.configure(streaming_threshold=0)
                        patch(self._modules)
                    self._recorder = xray_recorder
        return self._recorder

    def _unrecorded(self) -> bool:
        # Lambda sets the header for each invocation; "Sampled=0" means X-Ray keeps nothing of it.
        return self.disabled or (self._recorder is None and "Sampled=0" in os.environ.get("_X_AMZN_TRACE_ID", ""))

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        if self._unrecorded():
            yield _Unrecorded()
            return
        with self.recorder().in_subsegment(name=name, **kwargs) as subsegment:
            yield subsegment

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AbstractAsyncContextManager[BaseSegment]:
        return self.recorder().in_subsegment_async(name=name, **kwargs)  # type: ignore[no-any-return]

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        if self._unrecorded():
            return
        self.recorder().put_annotation(key=key, value=value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        if self._unrecorded():
            return
        self.recorder().put_metadata(key=key, value=value, namespace=namespace)

    def patch(self, modules: Sequence[str]) -> None:
        from aws_xray_sdk.core import patch

        patch(modules)

    def patch_all(self) -> None:
        from aws_xray_sdk.core import patch_all

        patch_all()


def _message_as_logged(message: Any) -> Any:
    # Powertools tries to read every message as JSON and throws the error away when it is not one;
    # ours are sentences, and one that is a JSON object or list still comes out as one.
    return json.loads(message) if isinstance(message, str) and message[:1] in ("{", "[") else message


logger = Logger(json_deserializer=_message_as_logged)
# auto_patch=False: the provider patches when it loads (Powertools would load it here to patch).
xray = LazyXRayProvider()
tracer = Tracer(provider=xray, auto_patch=False)
xray.disabled = bool(tracer.disabled)
before_snapshot(xray.recorder)
# Read once here, with our namespace as the fallback, so importing the package early (tests, tools)
# can never freeze an empty namespace that would make every metric flush fail.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "clinicpay")
