import pytest

from tests.factories import ApiKeyFactory, CampaignFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/campaigns", "/api/v1/campaigns/"])
def test_endpoints_answer_with_and_without_a_trailing_slash(client, path):
    key = ApiKeyFactory()
    campaign = CampaignFactory(workspace=key.workspace)
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    assert response.status_code == 200
    assert str(campaign.id) in response.content.decode()


def test_a_post_to_the_slashed_path_is_served_not_redirected(client):
    key = ApiKeyFactory()
    response = client.post("/api/v1/tasks/", data={"phone": "+14155550123"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    assert response.status_code == 400
    assert "campaign" in response.content.decode()


def test_the_schema_documents_each_endpoint_once(client):
    paths = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert "/api/v1/tasks" in paths and "/api/v1/tasks/" not in paths


@pytest.mark.parametrize("path", ["/api/v1/tasks/1/calls", "/api/v1/nothing", "/api/v1/campaigns/1/stop"])
def test_an_unknown_endpoint_is_a_404_in_the_api_error_body(client, path):
    response = client.post(path, data={}, content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["field"] is None and f"POST {path}" in error["message"]
