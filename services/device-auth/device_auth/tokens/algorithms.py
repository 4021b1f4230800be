"""Which algorithms a client assertion may use: asymmetric only (no `none`, no HMAC: RFC 8725 §3.1)."""

ASSERTION_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA"})
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
RSA_ALGORITHMS = frozenset({"PS256", "PS384", "PS512", "RS256"})
