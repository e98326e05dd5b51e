"""What a loopback host is: the one answer both the config check and the transport use."""

from __future__ import annotations

import ipaddress

# Names that resolve to this machine by convention (RFC 6761 §6.3), with or
# without the root's trailing dot.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """``localhost``, ``localhost.``, ``localhost.localdomain``, 127.0.0.0/8, ``::1``
    (bracketed or not, IPv4-mapped too); nothing else, and never by a DNS lookup."""
    name = host.strip().lower()
    if name.rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
