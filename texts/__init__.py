"""Every text the bot shows a user: one catalogue (this package), Russian.

A wording change or another language touches this package only. Texts are
HTML (the bot's parse mode); anything that comes from a user or from billing is
escaped with `esc` before it is put into a text. The catalogue is split by
feature only to keep each file short; import names from `texts`.
"""

from texts.auth import *  # noqa: F403
from texts.common import *  # noqa: F403
from texts.supervisor import *  # noqa: F403
from texts.team import *  # noqa: F403
from texts.walk import *  # noqa: F403
