"""IMAP4rev1: the sans-IO protocol and the client driver."""
