from trusted_identity.services import platform_secrets, verification


def test_platform_factory_makes_a_signing_platform(platform, cli_actor):
    secret = platform_secrets.reveal_secret(platform, cli_actor)
    assert secret.startswith("tis_ios_")
    assert verification.sign_for("acme", "ios", "42") == __import__(
        "trusted_identity.signing", fromlist=["sign"]
    ).sign(secret, "42")
