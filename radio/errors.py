"""Typed exceptions of the radio contract.

Every backend raises these and nothing else for radio-level faults, so the controller can tell a bad setting
(the user's fault, exit code 2) from a hardware fault (exit code 3) without knowing which backend it drives.
"""

from __future__ import annotations


class RadioError(Exception):
    """Base of every radio-layer error."""


class RadioConfigError(RadioError, ValueError):
    """A setting is outside what the radio supports, or a configuration file is malformed.

    The message names the bad value and what is allowed.
    """


class TxGuardRefused(RadioError):
    """A transmission was refused by the TX guard; nothing reached the radio."""


class RadioFault(RadioError):
    """A hardware or transport fault: the radio did not do what it was asked."""


class RadioTimeout(RadioFault):
    """The radio did not answer in time."""


class RadioDisconnected(RadioFault):
    """The radio went away (USB unplugged, network lost, closed)."""


class RadioOverflow(RadioFault):
    """Receive samples were lost because the host did not read them in time."""


class RadioUnderflow(RadioFault):
    """Transmit samples ran out before the radio needed them."""


class RecordingError(RadioError, ValueError):
    """A SigMF recording is missing, corrupted, or inconsistent with its metadata."""
