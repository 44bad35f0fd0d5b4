"""Telemetry: the structured log line and EMF metrics written once per request
(Powertools), and the per-invocation call statistics the model calls feed into
them. Deliberately imports nothing, so Powertools loads only when used."""
