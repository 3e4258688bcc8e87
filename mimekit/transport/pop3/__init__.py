"""POP3: the sans-IO protocol and the client driver."""
