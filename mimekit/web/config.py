"""What the web interface was asked for, in one object every part of it reads."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimekit.serve.users import Users
    from mimekit.web.send import Sender

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500          # past it: 400, so that one request cannot list 100,000 messages
POLL_INTERVAL = 1.0          # seconds between two looks at the stores for new mail (live updates)


@dataclass(frozen=True)
class WebConfig:
    sources: tuple[str, ...]             # what `scan` accepts: maildir:PATH, mbox:PATH, directories, files
    index_path: str                      # the SQLite header index (a cache: the stores stay the truth)
    writable: bool = False               # delete and flags allowed (Maildir folders only)
    users: "Users | None" = None         # HTTP basic auth against the users file
    token: str | None = None             # or a bearer token (also accepted as a basic-auth password)
    require_auth: bool = False           # beyond loopback: every request must authenticate
    sender: "Sender | None" = None       # compose and send (None: the page has no compose)
    per_user_folders: bool = False       # serve --domain: a logged-in user sees only their own Maildir
    page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE
    poll_interval: float = POLL_INTERVAL
