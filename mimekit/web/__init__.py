"""Mail over HTTP: a web page and a JSON API on a mailbox (`mimekit web`, `mimekit serve --http`).

Needs the optional extra `mimekit[web]` (Starlette, uvicorn, Jinja2, python-multipart).
The stages, one module each:

- folders: which folders the sources hold (a Maildir and its Maildir++ subfolders, an
  mbox, a directory of messages);
- index: the on-disk header index (SQLite) that lists and searches 100,000 messages fast;
  the store stays the truth and the index is rebuilt from it when it changes;
- mail: WebMail, everything the page and the API do to mail, without HTTP;
- messages: a message as JMAP Mail (RFC 8621) names it, for the API and the templates;
- html_body: a message's HTML made safe to show (sandboxed, no script, no remote load);
- security: authentication, the CSRF token and the security headers of every response;
- api, pages, events: the JSON API, the HTML pages, live updates (server-sent events);
- send: compose, reply and forward from the page, through SMTP or the outgoing queue;
- app, server: the Starlette application, and uvicorn running it beside `serve`.
"""
