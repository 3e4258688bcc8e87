"""Transport: URLs, TLS, secrets, the connection, the sans-IO base; SMTP, IMAP and POP3."""
