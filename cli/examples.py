"""The examples of every command: one table, shown at the end of `mimekit COMMAND --help`
(cli/main.py attaches them when it loads a command) and in the man pages' EXAMPLES section
(cli/manpages.py). tests/cli/test_help.py parses every `mimekit ...` in them, so an example
naming an option that does not exist fails the tests."""

# Command path ("decode", "queue run") -> (what it does, the shell line). A group's help
# shows its subcommands' examples too.
EXAMPLES = {
    "encode": [
        ("A message with a text body and an attachment, ready for `mimekit send`",
         "mimekit encode --from me@example.org --to you@example.org --subject Report "
         "--body body.txt --attach report.pdf -o report.eml"),
        ("Compose and send in one pipe",
         "mimekit encode --from me@example.org --to you@example.org --body body.txt | mimekit send -"),
        ("Reply to everyone on a message, quoting it, and send",
         "mimekit encode --reply original.eml --all --body answer.txt | mimekit send -t -"),
        ("Forward a message as an attachment, and a log file typed as text",
         "mimekit encode --forward original.eml --to you@example.org --attach app.log --type text/plain"),
    ],
    "check": [
        ("Is this message 7-bit clean and well formed? (exit 65 if not)", "mimekit check message.eml"),
        ("Every message of a Maildir, as JSON Lines", "mimekit check --json maildir:~/Mail/INBOX"),
    ],
    "decode": [
        ("Write every part of a message into parts/, the manifest on stdout",
         "mimekit decode -o parts/ message.eml"),
        ("Print the text body as UTF-8", "mimekit decode --text message.eml"),
        ("For a scanner: also what other readings of broken MIME find",
         "mimekit decode --all-readings --json -o parts/ suspicious.eml"),
    ],
    "show": [
        ("Decoded headers, the tree of parts and the defects", "mimekit show message.eml"),
        ("The same as JSON, one line per message of an mbox", "mimekit show --json mbox:archive.mbox"),
    ],
    "scan": [
        ("One line per message of a Maildir", "mimekit scan ~/Mail/INBOX"),
        ("Chosen fields, as JSON Lines", "mimekit scan --fields source,date,from,subject --json archive.mbox"),
    ],
    "send": [
        ("Send messages over one SMTP connection with the default account", "mimekit send *.eml"),
        ("To the recipients of the message's own To, Cc and Bcc, through a given server",
         "mimekit send --server smtps://me@mail.example.org -t --password-command 'pass mail' message.eml"),
    ],
    "fetch": [
        ("New mail of an IMAP folder into a Maildir",
         "mimekit fetch --new -o maildir:~/Mail/INBOX imaps://me@mail.example.org/INBOX"),
        ("The unseen messages of the default account, read straight away",
         "mimekit fetch --unseen -o mbox:- | mimekit scan mbox:-"),
        ("Fetch the unseen messages, then mark them seen and move them to Archive on the server",
         "mimekit fetch --unseen --mark-seen --move-to Archive -o maildir:~/Mail/INBOX"),
        ("Stay connected and run a script on each new message (its path in $MIMEKIT_MESSAGE)",
         "mimekit fetch --watch --new -o maildir:~/Mail/INBOX --exec './on-mail \"$MIMEKIT_MESSAGE\"'"),
    ],
    "folders": [
        ("The folders of the default account", "mimekit folders"),
        ("As JSON, from a given server", "mimekit folders --json imaps://me@mail.example.org"),
    ],
    "accounts list": [("The accounts of the config file", "mimekit accounts list")],
    "accounts check": [("Does account work log in to its servers?", "mimekit accounts check work")],
    "queue list": [("What is waiting, and why", "mimekit queue list")],
    "queue run": [("Deliver what is due (from cron or a systemd timer)", "mimekit queue run -q")],
    "queue retry": [("Try an entry again at the next run", "mimekit queue retry ENTRY-ID")],
    "queue hold": [("Keep an entry back", "mimekit queue hold ENTRY-ID")],
    "queue release": [("Let it go again", "mimekit queue release ENTRY-ID")],
    "queue drop": [("Remove an entry for good", "mimekit queue drop ENTRY-ID")],
    "sendmail": [
        ("Queue a message for its To, Cc and Bcc, as mutt or git send-email do",
         "mimekit sendmail -t < message.eml"),
    ],
    "users add": [("Add a user, the password read from a command",
                   "mimekit users add --password-command 'pass mail/alice' users.txt alice")],
    "users list": [("The user names", "mimekit users list users.txt")],
    "users remove": [("Remove a user", "mimekit users remove users.txt alice")],
    "serve": [
        ("A catch-all test server: SMTP on 127.0.0.1:2525, POP3 on 127.0.0.1:1110",
         "mimekit serve maildir:./test-mail"),
        ("Mail for one domain, logins from a users file",
         "mimekit serve --domain example.org --users users.txt maildir:/srv/mail"),
    ],
    "web": [
        ("Browse a Maildir and an mbox on http://127.0.0.1:8080/",
         "mimekit web --http 127.0.0.1:8080 ~/Mail/INBOX archive.mbox"),
    ],
    "completion": [
        ("Completion in the running bash", "source <(mimekit completion bash)"),
        ("For every new fish", "mimekit completion fish > ~/.config/fish/completions/mimekit.fish"),
    ],
}


def examples_of(path: str) -> list[tuple[str, str]]:
    """The examples of the command at `path` ("queue"), its subcommands' ("queue run") included."""
    return [example for name, examples in EXAMPLES.items()
            if name == path or name.startswith(path + " ") for example in examples]


def examples_epilog(path: str) -> str:
    """The examples of `path` as a help epilog: paragraphs click does not rewrap ("\\b")."""
    examples = examples_of(path)
    if not examples:
        return ""
    return "\b\nExamples:\n\n" + "\n\n".join(f"\b\n  # {comment}\n  {line}" for comment, line in examples)
