"""What every FastAPI service shares: problem responses, health, the app factory."""
