"""The business operations of Trusted Identity, in one place.

The admin, the management command and the HTTP views import the module that owns a
rule (``from ..services import platform_secrets``; ``platform_secrets.rotate_secret(...)``)
and hold no rules of their own: who may do what,
how a secret is rotated, when enforcement may be turned on, how a session start
is decided and counted. Each concern has its module; a module imports only those
above it in this list, never one below:

- ``access``: actors, roles, the permission table and checks
- ``audit``: the ``AuditEvent`` (``LogEntry`` too for a user) and log line of every change
- ``durations``: grace periods as typed (``24h``) and as said
- ``lookup``: the platform snapshot of the hot path, its caches and invalidation
- ``platform_secrets``: the secret lifecycle (create, reveal, rotate)
- ``spaces``: spaces and platforms (find, create, add a platform)
- ``memberships``: grant and revoke roles in a space
- ``counting``: recording session starts: outcomes per hour, and their details
- ``retention``: folding old hourly counts into daily ones, deleting old daily ones
- ``figures``: rollout figures, the readiness rule (by distinct users)
- ``diagnostics``: reasons, client versions, the forecast, secret use, the failure
  log, ``status``
- ``enforcement``: turning enforcement on and off under the readiness rule
- ``origins``: the CORS allow-lists of web platforms
- ``signature_forms``: which signature forms a platform accepts (plain, either, token)
- ``verification``: signing and verifying a user id with a platform's keys, in either form
- ``sessions``: session start (parse, verify, decide, count)
- ``signature_tester``: a signature's verdict for those who may reveal (audited)
- ``rekey``: re-encrypting every secret under the first key

``docs/architecture.md`` shows how they fit together.
"""
