"""Fallback chains across models and regions, and the cooldowns every Lambda shares."""
