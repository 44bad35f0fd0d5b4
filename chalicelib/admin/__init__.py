"""The admin API: keys, tenants and spend, behind admin keys."""
