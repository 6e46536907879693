"""The only Logger, Tracer and Metrics instances. Service name comes from POWERTOOLS_SERVICE_NAME."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
# Read once here, with our namespace as the fallback, so importing the package early (tests, tools)
# can never freeze an empty namespace that would make every metric flush fail.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "clinicpay")
