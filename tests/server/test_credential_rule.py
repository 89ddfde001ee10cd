"""One rule says whether a token or agent key works: finding, listing and dropping agree on
it, at the exact second a credential expires too."""

from __future__ import annotations

from typing import List, Optional

import pytest
from sqlalchemy.orm import Session

from peephole.server.db import Database
from peephole.server.models import AgentKeyRow, TokenRow
from peephole.server.store import credentials

pytestmark = pytest.mark.server

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("expires_at", "revoked", "why"),
    [
        (None, False, None),
        (NOW + 1, False, None),
        (NOW, False, "expired"),  # expiring at this second: no longer works
        (NOW - 1, False, "expired"),
        (None, True, "revoked"),
        (NOW - 1, True, "revoked"),
    ],
)
def test_finding_listing_and_dropping_agree(
    db: Database, expires_at: Optional[float], revoked: bool, why: Optional[str]
) -> None:
    token_id, token = db.run(
        lambda s: credentials.create_token(s, "ann", "viewer", expires_at=expires_at)
    )
    key_id, key = db.run(lambda s: credentials.create_agent_key(s, "k", expires_at=expires_at))
    if revoked:
        db.run(lambda s: credentials.revoke_token(s, token_id, NOW - 5))
        db.run(lambda s: credentials.revoke_agent_key(s, key_id, NOW - 5))
    found_token = db.run(lambda s: credentials.find_token(s, token, NOW))
    found_key = db.run(lambda s: credentials.find_agent_key(s, key, NOW))
    assert (found_token is None, found_key is None) == (why is not None, why is not None)
    dropped = db.run(lambda s: credentials.no_longer_valid(s, {token_id}, {key_id}, NOW))
    expected = [] if why is None else [("token", token_id, why), ("agent_key", key_id, why)]
    assert dropped == expected
    assert db.run(lambda s: _listed_active(s, token_id, key_id)) == [why is None, why is None]


def _listed_active(session: Session, token_id: int, key_id: int) -> List[bool]:
    token_row = session.get(TokenRow, token_id)
    key_row = session.get(AgentKeyRow, key_id)
    assert token_row is not None and key_row is not None
    return [
        credentials.token_dict(token_row, NOW)["active"],
        credentials.agent_key_dict(key_row, NOW)["active"],
    ]
