"""The demo's teams on whichever AG2 generation is installed (they cannot share a virtualenv).

Classic ``autogen`` (``agents.py``) when it is installed, else ``ag2`` 1.x (``agents_ag2.py``):
``make demo`` runs the first, ``make demo AG2=1`` the second. Both expose the same builders.
"""

from __future__ import annotations

from ag2_logging.integrations import classic_available
from example_project.demo.common import task_message

if classic_available():
    from example_project.demo.agents import (
        GroupChatTeam,
        TwoAgentTeam,
        build_group_chat,
        build_two_agent_chat,
    )

    GENERATION = "classic"
else:
    from example_project.demo.agents_ag2 import (
        GroupChatTeam,
        TwoAgentTeam,
        build_group_chat,
        build_two_agent_chat,
    )

    GENERATION = "ag2"

__all__ = [
    "GENERATION",
    "GroupChatTeam",
    "TwoAgentTeam",
    "build_group_chat",
    "build_two_agent_chat",
    "task_message",
]
