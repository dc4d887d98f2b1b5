"""The probe's library: edited by the autoreload tests."""

UNKNOWN_PREFIX = "unknown"
