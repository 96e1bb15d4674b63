"""What the HTTP service needs besides its routes (``app.api``): metrics, JSON logs, graceful shutdown."""
