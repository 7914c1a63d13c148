from django.urls import path

from telephony import views

app_name = "telephony"

urlpatterns = [
    path("webhooks/<slug:carrier>/status/", views.carrier_status, name="carrier-status"),
    path("webhooks/agent/analysis/", views.agent_analysis, name="agent-analysis"),
    path("webhooks/agent/calls/<str:call_id>/", views.agent_call, name="agent-call"),
]
