from __future__ import annotations

from collections.abc import Iterator

import pytest

from local import iam
from tests.support.api import ApiClient
from tests.support.env import OPERATOR_KEY, TestStack, start_test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    started = start_test_stack()
    yield started
    started.server.stop()
    started.moto.stop()


@pytest.fixture(autouse=True)
def clean(stack: TestStack) -> None:
    stack.reset()


@pytest.fixture(autouse=True)
def within_each_role() -> Iterator[None]:
    """Fails a test in which a handler made an AWS call its role in template.yaml does not allow
    (local/iam.py answered it AccessDenied, as AWS would)."""
    iam.denials.clear()
    yield
    denied, iam.denials[:] = list(iam.denials), []
    assert not denied, "AWS calls template.yaml does not allow:\n" + "\n".join(sorted(set(denied)))


@pytest.fixture
def api() -> ApiClient:
    return ApiClient()


@pytest.fixture
def operator(api: ApiClient) -> ApiClient:
    return api.with_key(OPERATOR_KEY)
