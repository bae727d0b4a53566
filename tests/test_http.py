"""The HTTP endpoint against the example config: success, every error kind, headers."""

from __future__ import annotations

import base64

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "mobile"
ALICE = {"username": "alice", "password": "wonderland", "version": "1.14"}


def error_text(body: bytes) -> str:
    root = etree.fromstring(body)
    assert root.tag == "error"
    assert root.get("code") == "1"
    return root.text or ""


def test_alice_gets_golden_document(example_client: TestClient) -> None:
    response = example_client.get("/id.php", params=ALICE)
    assert response.status_code == 200
    assert response.content == (GOLDEN / "alice-1.14.xml").read_bytes()
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_both_default_paths_and_post(example_client: TestClient) -> None:
    get = example_client.get("/provision", params=ALICE)
    post = example_client.post("/id.php", data=ALICE)
    assert get.status_code == post.status_code == 200
    assert get.content == post.content


@pytest.mark.parametrize("names", [("user", "pass", "v"), ("u", "p", "version")])
def test_parameter_aliases(example_client: TestClient, names: tuple[str, str, str]) -> None:
    params = dict(zip(names, ("bob", "builder", "1.14"), strict=True))
    response = example_client.get("/id.php", params=params)
    assert response.status_code == 200
    assert response.content == (GOLDEN / "bob-1.14.xml").read_bytes()


def test_wrong_password_and_unknown_user_are_identical(example_client: TestClient) -> None:
    wrong = example_client.get("/id.php", params={**ALICE, "password": "wrong"})
    unknown = example_client.get("/id.php", params={**ALICE, "username": "mallory"})
    assert wrong.status_code == unknown.status_code == 200
    assert wrong.content == unknown.content
    assert dict(wrong.headers) == dict(unknown.headers)
    assert error_text(wrong.content) == "Wrong username or password."


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"password": "x", "version": "1.14"}, "No username given. Please enter your username."),
        ({"username": "alice", "version": "1.14"},
         "No password given. Please enter your password."),
        ({"username": "alice", "password": "", "version": "1.14"},
         "No password given. Please enter your password."),
        ({"username": "", "password": "wonderland"},
         "No username given. Please enter your username."),
        ({**ALICE, "version": "one.two"},
         "Unknown provisioning version. Please update your Zoiper app."),
        ({**ALICE, "version": "0.9"},
         "Unknown provisioning version. Please update your Zoiper app."),
    ],
)
def test_user_errors_are_200_with_actionable_text(
    example_client: TestClient, params: dict[str, str], message: str
) -> None:
    response = example_client.get("/id.php", params=params)
    assert response.status_code == 200
    assert error_text(response.content) == message
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "query",
    [
        "username=alice&username=alice&password=wonderland",
        "username=alice&password=wonderland&password=wonderland",
        "username=alice&u=alice&password=wonderland",
        "username=alice&password=" + "x" * 300,
        "username=" + "a" * 257 + "&password=wonderland",
        "username=%FF%FE&password=wonderland",
    ],
)
def test_bad_requests_get_400_error_document(example_client: TestClient, query: str) -> None:
    response = example_client.get("/id.php?" + query)
    assert response.status_code == 400
    assert error_text(response.content).startswith("Bad request")


def test_oversized_post_body(example_client: TestClient) -> None:
    response = example_client.post("/id.php", content=b"a=" + b"x" * 20000,
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert error_text(response.content) == "Bad request: request body too large."


def test_post_multipart_refused(example_client: TestClient) -> None:
    response = example_client.post("/id.php", files={"f": ("a.txt", b"x")})
    assert response.status_code == 400


def test_query_and_body_parameter_twice(example_client: TestClient) -> None:
    response = example_client.post("/id.php?username=alice", data={"username": "alice",
                                                                     "password": "wonderland"})
    assert response.status_code == 400


def test_basic_auth_used_when_query_has_no_credentials(example_client: TestClient) -> None:
    token = base64.b64encode(b"alice:wonderland").decode()
    response = example_client.get("/id.php", params={"version": "1.14"},
                                  headers={"Authorization": f"Basic {token}"})
    assert response.content == (GOLDEN / "alice-1.14.xml").read_bytes()


def test_malformed_basic_header_is_bad_request(example_client: TestClient) -> None:
    response = example_client.get("/id.php", headers={"Authorization": "Basic !!!"})
    assert response.status_code == 400


def test_unknown_path_and_method_get_error_documents(example_client: TestClient) -> None:
    missing = example_client.get("/nope")
    assert missing.status_code == 404
    assert error_text(missing.content) == "Not found: this is not a provisioning URL."
    for method in ("PUT", "DELETE", "OPTIONS", "HEAD"):
        response = example_client.request(method, "/id.php", params=ALICE)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET, POST"
        if method != "HEAD":
            assert error_text(response.content) == "Method not allowed: use GET or POST."


def test_health(example_client: TestClient) -> None:
    assert example_client.get("/healthz").text == "ok\n"


@pytest.mark.parametrize("name", ["%01", "%00", "%EF%BF%BE", "%01" * 300])
def test_unprintable_parameter_names_get_a_clean_400(example_client: TestClient,
                                                     name: str) -> None:
    response = example_client.get(f"/id.php?{name}=a&{name}=b")
    assert response.status_code == 400
    assert error_text(response.content).startswith("Bad request: parameter '\\")
