"""Radios on other hosts: ``testbed serve`` exposes one radio over ZeroMQ (CurveZMQ-authenticated), and
:class:`RemoteRadio` implements the radio contract against it.

- :mod:`radio.remote.protocol`: versioned, schema-checked messages (a JSON header + raw complex64 frames);
- :mod:`radio.remote.server`: :class:`RadioServer`, one thread owning the radio, ZAP allow-list, TX guard;
- :mod:`radio.remote.client`: :class:`RemoteRadio`, timeouts, retries with backoff, heartbeats, re-sync;
- :mod:`radio.remote.keys`: CurveZMQ keypairs and the server's allow-list.

``zmq`` is imported when a server or a remote radio is opened, not when this package is imported.
"""

from radio.remote.client import RemoteOptions, RemoteRadio
from radio.remote.keys import Keypair, ServerKeys, generate_keypair
from radio.remote.protocol import PROTOCOL_VERSION, ProtocolError
from radio.remote.server import RadioServer

__all__ = ["Keypair", "PROTOCOL_VERSION", "ProtocolError", "RadioServer", "RemoteOptions", "RemoteRadio",
           "ServerKeys", "generate_keypair"]
