"""Config lists compared entry by entry (``transfer.attackers``: one section per attacker)."""


def dict_lists(a, b) -> bool:
    """Whether ``a`` and ``b`` are lists of dicts of one length: compared as sections, entry by entry,
    so that a setting added to an entry since a run was made counts only where it leaves its default."""
    return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
            and all(isinstance(x, dict) for x in a + b))  # fmt: skip
