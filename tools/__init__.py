"""Maintenance scripts run by hand; never packaged into Lambda."""
