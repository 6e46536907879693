from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture
def api() -> ApiClient:
    return ApiClient()


@pytest.fixture
def operator(api: ApiClient) -> ApiClient:
    return api.with_key(OPERATOR_KEY)
