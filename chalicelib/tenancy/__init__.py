"""Who is calling and what they may spend: hashed API keys, the authorizer's
key-to-tenant step, the rpm/tpm/tpd limiter with its reservations, and the
per-key usage records behind ``GET /usage``. Deliberately imports nothing."""
