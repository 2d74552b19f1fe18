"""Publisher: carries every CA status change from the outbox to the VAs.

Reads the CA store's outbox and speaks the VA's publish protocol.
"""
