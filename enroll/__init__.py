"""Device enrollment: EST (RFC 7030, 8951) and SCEP (RFC 8894), bound to RA
end entities, their one-time enrollment secrets and the RA's approvals."""
