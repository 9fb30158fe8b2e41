"""The probe harness itself: a secured server answers only with credentials."""

from __future__ import annotations

from tests.security.conftest import Server


def test_secured_server_needs_credentials(secured: Server) -> None:
    with secured.client() as http:
        assert http.get("/api/v1/queues").status_code == 401
        assert http.get("/api/v1/queues", headers=secured.viewer()).status_code == 200
        assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {secured.admin_key}"}).status_code == 200


def test_unsecured_server_answers_without_credentials(unsecured: Server) -> None:
    with unsecured.client() as http:
        assert http.get("/api/v1/queues").status_code == 200
