"""Local message stores: Maildir and mbox."""
