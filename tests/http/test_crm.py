"""The test CRM itself: a request still sleeping out one test's ``delay`` leaves the next
test's switches alone (CI once saw such a straggler spend a ``fail_first`` meant for the
next test, whose 503 became a 200)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.http.crm import TOKEN, Crm, Running, serving


@pytest.fixture
def own_plain_crm() -> Iterator[tuple[Crm, Running]]:
    crm = Crm()
    for running in serving(crm):
        yield crm, running


def test_a_straggler_of_an_ended_test_does_not_spend_the_next_tests_failures(
        own_plain_crm: tuple[Crm, Running]) -> None:
    crm, running = own_plain_crm
    crm.delay = 0.4
    with pytest.raises(httpx.ReadTimeout):  # the earlier test gave up on its answer
        httpx.post(f"{running.url}/api/login", timeout=0.1,
                   content=json.dumps({"user": "alice", "secret": "wonderland"}),
                   headers={"authorization": f"Bearer {TOKEN}"})
    crm.reset()  # the next test begins
    crm.fail_first = 1
    time.sleep(0.6)  # the straggler wakes up in the next test
    assert crm.fail_first == 1
