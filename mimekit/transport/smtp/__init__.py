"""SMTP: the sans-IO protocol, the DATA stream, the envelope, the client driver."""
