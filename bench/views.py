"""The two floors session start is compared with, in the same deployment."""

import hashlib
import hmac
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def trivial(request):
    """The cheapest JSON answer Django gives through the same middleware."""
    return JsonResponse({"ok": True}, status=201)


@csrf_exempt
def handwritten(request):
    """A minimal hand-written verify view with the secret in settings."""
    try:
        data = json.loads(request.body)
        user_id, signed = data["userId"], data["signed"]
        expected = hmac.new(
            settings.BENCH_HANDWRITTEN_SECRET.encode(), user_id.encode(), hashlib.sha256
        ).hexdigest()
        trusted = hmac.compare_digest(expected, signed.lower())
    except (ValueError, KeyError, TypeError, AttributeError):
        return JsonResponse({"error": "bad request"}, status=400)
    return JsonResponse({"userId": user_id, "trusted": trusted}, status=201)
