"""Outbound webhooks: the events a team's own software asked for, signed and delivered to its
endpoints by the workers, following the Standard Webhooks spec (standardwebhooks.com)."""
