"""The base of every workspace endpoint: API-key auth, per-key throttle, JSON in and out."""
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from campaigns.api.auth import ApiKeyAuthentication, ApiKeyRateThrottle, HasWorkspaceKey
from campaigns.api.errors import exception_handler
from campaigns.actions.audit import Actor


class WorkspaceView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasWorkspaceKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return exception_handler

    @property
    def workspace(self):
        return self.request.user.workspace

    @property
    def actor(self):
        """Who makes this request, for the audit trail: the API key (its prefix and name)."""
        return Actor.for_api_key(self.request.user.api_key)

    def json_object(self):
        """The request body, which must be a JSON object (and be there: the schema requires it)."""
        if not self.request.data and not int(self.request.META.get("CONTENT_LENGTH") or 0):
            raise ValidationError({"body": "is required: send a JSON object"})
        if not isinstance(self.request.data, dict):
            raise ValidationError({"body": "must be a JSON object"})
        return self.request.data
