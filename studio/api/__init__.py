"""The REST API: team tokens (tokens.py), their authentication (auth.py), one router per area."""
