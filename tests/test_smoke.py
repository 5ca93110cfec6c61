from trusted_identity import services


def test_platform_factory_makes_a_signing_platform(platform, cli_actor):
    secret = services.reveal_secret(platform, cli_actor)
    assert secret.startswith("tis_ios_")
    assert services.sign_for("acme", "ios", "42") == __import__(
        "trusted_identity.signing", fromlist=["sign"]
    ).sign(secret, "42")
