from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("campaigns.api.urls")),
    path("metrics", include("config.metrics")),
    path("", include("telephony.urls")),
]
