"""Forms of the admin console. They validate input only; the rules live in ``services``."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidRequest
from .models import KeySource, Role, Space, SpaceMembership
from .publickeys import MAX_INPUT, MAX_KID_LENGTH, PublicKeyError, check_kid
from .services import durations, origins, public_keys, signature_forms, spaces

#: The grace periods the admin offers for the previous secret after a rotation.
GRACE_CHOICES = [
    ("0", _("None: only the new secret verifies, every earlier one stops now")),
    ("1h", _("1 hour")),
    ("24h", _("24 hours")),
    ("7d", _("7 days")),
]
DEFAULT_GRACE = "24h"


class RotationForm(forms.Form):
    """The grace period of a rotation: one of the offered choices, as a timedelta."""

    grace = forms.ChoiceField(
        label=_("The previous secret keeps verifying for"),
        choices=GRACE_CHOICES,
        initial=DEFAULT_GRACE,
        help_text=_(
            "Clients signing with the previous secret keep working for this long, "
            "so you can deploy the new secret first."
        ),
    )

    def clean_grace(self) -> timedelta:
        try:
            return durations.parse_duration(self.cleaned_data["grace"])
        except InvalidRequest as exc:  # pragma: no cover - the choices are all valid
            raise forms.ValidationError(exc.message) from None


class EnforcementForm(forms.Form):
    """Turning enforcement on or off; below the readiness threshold, an explicit override."""

    enabled = forms.TypedChoiceField(
        choices=[("on", _("On")), ("off", _("Off"))],
        coerce=lambda value: value == "on",
        widget=forms.HiddenInput,
    )
    override = forms.BooleanField(
        label=_("Turn enforcement on anyway, below the readiness threshold"),
        required=False,
    )
    reason = forms.CharField(
        label=_("Reason for the override"),
        help_text=_("Recorded in the platform's history with the figures."),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip()


class OriginForm(forms.Form):
    """Allow an origin for a web platform, or remove it; ``services.origins`` validates it."""

    action = forms.ChoiceField(choices=[("allow", _("Allow")), ("deny", _("Remove"))])
    origin = forms.CharField(label=_("Origin"), max_length=300, strip=True)

    def clean_origin(self) -> str:
        try:
            return origins.normalize_origin(self.cleaned_data["origin"])
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.message) from None


def compact_duration(seconds: int) -> str:
    """Seconds as people type them: 86400 is ``24h``, 604800 is ``7d``, 90 is ``90s``."""
    if seconds % 86400 == 0 and seconds > 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class SignatureFormForm(forms.Form):
    """Which forms a platform accepts and its tokens' maximum age; for ``token`` below the
    readiness threshold, an explicit override with a reason."""

    form = forms.ChoiceField(
        label=_("Accepted signatures"),
        choices=[
            ("plain", _("Plain signatures only")),
            ("either", _("Plain signatures or tokens")),
            ("token", _("Tokens only")),
        ],
    )
    max_age = forms.CharField(
        label=_("Maximum token age"),
        max_length=16,
        help_text=_("The longest lifetime (exp - iat) a token may have: 1m to 7d, such as 24h."),
    )
    override = forms.BooleanField(
        label=_("Accept only tokens anyway, without the readiness rule"), required=False
    )
    reason = forms.CharField(
        label=_("Reason for the override"),
        help_text=_("Recorded in the platform's history."),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def clean_max_age(self) -> timedelta:
        try:
            return signature_forms.parse_max_age(self.cleaned_data["max_age"])
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip()


class KeySourceForm(forms.Form):
    """What a platform verifies with; for ``public-key`` below the readiness threshold,
    an explicit override with a reason (``services.key_sources`` decides)."""

    source = forms.ChoiceField(label=_("Verifies with"), choices=KeySource.choices)
    override = forms.BooleanField(
        label=_("Accept public-key tokens only anyway, without the readiness rule"),
        required=False,
    )
    reason = forms.CharField(
        label=_("Reason for the override"),
        help_text=_("Recorded in the platform's history."),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip()


#: The attributes of a field whose value is a code, not prose.
CODE_INPUT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


class PublicKeyForm(forms.Form):
    """A public key pasted on the page, with an optional kid and expiry. The key is read
    by ``services.public_keys`` (a private, weak or unsupported key refused there, in a
    message that never repeats it); a refused form is drawn again without it."""

    key = forms.CharField(
        label=_("Public key"),
        max_length=MAX_INPUT,
        strip=False,
        error_messages={
            "max_length": _("That is longer than 16 KiB: not one public key."),
            "required": _("Paste the public key: PEM or JWK."),
        },
        widget=forms.Textarea(attrs={**CODE_INPUT, "rows": 6, "cols": 66}),
    )
    kid = forms.CharField(label=_("Key id (kid)"), required=False, max_length=MAX_KID_LENGTH)
    expires = forms.CharField(label=_("Expires after"), required=False, max_length=16)

    def clean_kid(self) -> str | None:
        kid = self.cleaned_data["kid"]
        if not kid:
            return None  # the JWK's own kid, else the key's thumbprint
        try:
            return check_kid(kid)
        except PublicKeyError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_expires(self) -> timedelta | None:
        if not self.cleaned_data["expires"]:
            return None
        try:
            return public_keys.parse_expiry(self.cleaned_data["expires"])
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.message) from None


class KeyActionForm(forms.Form):
    """Expire or remove one public key of a platform, named by its kid."""

    action = forms.ChoiceField(choices=[("expire", _("Expire")), ("remove", _("Remove"))])
    kid = forms.CharField(max_length=MAX_KID_LENGTH)


class MembershipAddForm(forms.ModelForm):
    """Grant a user a role in a space, by username: no list of the site's users is shown."""

    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_(
            "The user becomes a member of the space with this role, and staff if they are "
            "not already (taken back when their last membership is revoked)."
        ),
    )

    class Meta:
        model = SpaceMembership
        fields = ["space", "username", "role"]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        if not user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise forms.ValidationError(_("There is no user with this username."))
        return username


class MembershipChangeForm(forms.ModelForm):
    class Meta:
        model = SpaceMembership
        fields = ["role"]
        widgets = {"role": forms.RadioSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "role" in self.fields:  # absent when the form is view-only
            self.fields["role"].choices = Role.choices


class SpaceForm(forms.ModelForm):
    """A space's name and slug in the admin, under the rules ``create_space`` applies:
    no control or invisible formatting characters in the name, the slug's own rule."""

    class Meta:
        model = Space
        fields = ["name", "slug"]

    def clean_name(self) -> str:
        try:
            return spaces.clean_space_name(self.cleaned_data.get("name") or "")
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.message) from None
