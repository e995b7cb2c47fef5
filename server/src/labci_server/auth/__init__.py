"""People and what they may do: accounts, sessions, personal API tokens, permissions per
repository, and the policy every route declares (see `policies.py`)."""
