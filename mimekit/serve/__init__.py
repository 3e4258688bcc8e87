"""`mimekit serve`: the receiving side of the mail system on a Maildir.

SMTP in (smtp_session.py, on the server role of transport/smtp), POP3 out (pop3_session.py,
on the server role of transport/pop3), both asyncio sessions over session.py; where mail
goes and how it is made durable is mailboxes.py; who may log in is users.py; the listeners,
limits and signals are server.py. Settings: config.py.
"""
