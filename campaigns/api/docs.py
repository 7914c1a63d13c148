"""The OpenAPI schema and Swagger UI, served from this process: no CDN at run time.

Swagger UI's files come from the drf-spectacular-sidecar package, read from its installed
directory, so the docs need neither `collectstatic` nor the sidecar app in INSTALLED_APPS.
"""
import mimetypes
from pathlib import Path

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
