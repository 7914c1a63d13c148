"""The OpenAPI schema and Swagger UI, served from this process: no CDN at run time.

Swagger UI's files come from the drf-spectacular-sidecar package, read from its installed
directory, so the docs need neither `collectstatic` nor the sidecar app in INSTALLED_APPS.
"""
import mimetypes
from pathlib import Path
from zoneinfo import available_timezones

import drf_spectacular_sidecar
from django.http import FileResponse, Http404, HttpResponse
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

SWAGGER_DIR = Path(drf_spectacular_sidecar.__file__).resolve().parent / "static" / "drf_spectacular_sidecar" \
    / "swagger-ui-dist"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"})

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dialer API</title>
<link rel="icon" type="image/png" href="{assets}favicon-32x32.png">
<link rel="stylesheet" href="{assets}swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script src="{assets}swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{schema}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
}});
</script>
</body>
</html>
"""


@require_GET
def swagger_ui(request):
    assets = reverse("api-docs-asset", args=["x"])[:-1]
    return HttpResponse(PAGE.format(assets=escape(assets), schema=escape(reverse("api-schema"))))


@require_GET
def swagger_asset(request, name):
    if name not in ASSETS:
        raise Http404("No such asset.")
    content_type, _ = mimetypes.guess_type(name)
    response = FileResponse((SWAGGER_DIR / name).open("rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    return response


def drop_trailing_slash_aliases(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: document each endpoint once, under its slash-less path."""
    return [endpoint for endpoint in endpoints if not endpoint[0].endswith("/")]


# Each create operation links its new object's id to the operations that take it, so a client
# (and a stateful test) can follow create → read → control.
ID_LINKS = {
    "campaigns_create": ("campaign_id", "$response.body#/id", (
        "campaigns_retrieve", "campaigns_update", "campaigns_pause", "campaigns_resume", "campaigns_archive",
        "campaigns_contacts_upload", "campaigns_tasks_list", "campaigns_history")),
    "tasks_create": ("task_id", "$response.body#/id", ("tasks_retrieve", "tasks_pause", "tasks_resume",
                                                       "tasks_archive")),
    "dnc_add": ("number", "$response.body#/entries/0/phone", ("dnc_remove",)),
}


def add_components_and_links(result, **kwargs):
    """drf-spectacular postprocessing hook: the shared Timezone enum, required bodies, each create's links."""
    result.setdefault("components", {}).setdefault("schemas", {})["Timezone"] = {
        "type": "string", "enum": sorted(available_timezones()), "example": "Europe/London",
        "description": "An IANA timezone name.",
    }
    operations = {operation["operationId"]: operation for methods in result["paths"].values()
                  for operation in methods.values() if isinstance(operation, dict) and "operationId" in operation}
    for operation in operations.values():
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True  # every body-taking endpoint refuses an empty request
    for creator, (parameter, expression, targets) in ID_LINKS.items():
        operations[creator]["responses"]["201"]["links"] = {
            target: {"operationId": target, "parameters": {parameter: expression}} for target in targets
        }
    return result
