"""The REST API, mounted at /api/v1/."""
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from campaigns.api import campaign_views, docs, errors, task_views, workspace_views

urlpatterns = [
    path("campaigns", campaign_views.CampaignListView.as_view(), name="api-campaigns"),
    path("campaigns/<str:campaign_id>", campaign_views.CampaignDetailView.as_view(), name="api-campaign"),
    path("campaigns/<str:campaign_id>/pause", campaign_views.CampaignPauseView.as_view(), name="api-campaign-pause"),
    path("campaigns/<str:campaign_id>/resume", campaign_views.CampaignResumeView.as_view(),
         name="api-campaign-resume"),
    path("campaigns/<str:campaign_id>/archive", campaign_views.CampaignArchiveView.as_view(),
         name="api-campaign-archive"),
    path("campaigns/<str:campaign_id>/contacts", campaign_views.CampaignContactsView.as_view(),
         name="api-campaign-contacts"),
    path("campaigns/<str:campaign_id>/history", campaign_views.CampaignHistoryView.as_view(),
         name="api-campaign-history"),
    path("campaigns/<str:campaign_id>/tasks", campaign_views.CampaignTasksView.as_view(), name="api-campaign-tasks"),
    path("tasks", task_views.TaskCreateView.as_view(), name="api-tasks"),
    path("tasks/<str:task_id>", task_views.TaskDetailView.as_view(), name="api-task"),
    path("tasks/<str:task_id>/pause", task_views.TaskPauseView.as_view(), name="api-task-pause"),
    path("tasks/<str:task_id>/resume", task_views.TaskResumeView.as_view(), name="api-task-resume"),
    path("tasks/<str:task_id>/archive", task_views.TaskArchiveView.as_view(), name="api-task-archive"),
    path("calls/<str:call_id>", task_views.CallDetailView.as_view(), name="api-call"),
    path("workspace", workspace_views.WorkspaceDetailView.as_view(), name="api-workspace"),
    path("workspace/compliance", workspace_views.ComplianceView.as_view(), name="api-workspace-compliance"),
    path("agents", workspace_views.AgentListView.as_view(), name="api-agents"),
    path("numbers", workspace_views.NumberListView.as_view(), name="api-numbers"),
    path("integrations", workspace_views.IntegrationListView.as_view(), name="api-integrations"),
    path("integrations/<str:platform>", workspace_views.IntegrationDetailView.as_view(), name="api-integration"),
    path("slots", workspace_views.SlotsView.as_view(), name="api-slots"),
    path("dnc", workspace_views.DncListView.as_view(), name="api-dnc"),
    path("dnc/<str:number>", workspace_views.DncDetailView.as_view(), name="api-dnc-entry"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="api-schema"),
    path("docs/", docs.swagger_ui, name="api-docs"),
    path("docs/assets/<str:name>", docs.swagger_asset, name="api-docs-asset"),
]

# Clients write both /api/v1/tasks and /api/v1/tasks/: serve both rather than redirect a POST.
urlpatterns += [
    path(f"{pattern.pattern}/", pattern.callback)
    for pattern in list(urlpatterns) if not str(pattern.pattern).endswith("/")
]

urlpatterns.append(re_path(r"^(?P<path>.*)$", errors.unknown_endpoint, name="api-unknown-endpoint"))
