"""HTTP: health, metrics, the management API and the dashboard."""
