"""An ACME server (RFC 8555): accounts, orders, authorizations and their challenges."""
