"""Signals the app sends, for sites to connect their own receivers to.

Sent by the service layer after the operation's transaction has committed. ``user``
is None when the command line's own actor acted (it has no user row):

- ``secret_revealed(platform, user)``
- ``secret_rotated(platform, user, grace)``
- ``enforcement_changed(platform, user, enforced, reason)``
- ``grace_ended(platform, user, count)``: previous secrets revoked before their grace ended
- ``rollout_alert(platform, kind, subject, message)``: ``kind`` is ``rejections`` (an
  enforced platform's rejected starts in one hour reached ``ALERT_REJECTIONS_PER_HOUR``)
  or ``grace_ending`` (a previous secret still verifies starts shortly before its grace
  ends); sent once per alert, with the e-mail to the space's owners

None of them carries a secret. The app's own receivers (which keep its caches
honest) are in ``receivers.py``; this module imports nothing of the app, so the
service layer can send these without an import circle.
"""

from __future__ import annotations

from django.dispatch import Signal

secret_revealed = Signal()
secret_rotated = Signal()
enforcement_changed = Signal()
grace_ended = Signal()
rollout_alert = Signal()
