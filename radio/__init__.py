"""Radios and the OFDM physical layer. Imports nothing else of the project; hardware drivers load lazily."""

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception, RxMetadata, TxReport
from radio.errors import (RadioConfigError, RadioDisconnected, RadioError, RadioFault, RadioOverflow,
                          RadioTimeout, RadioUnderflow, RecordingError, TxGuardRefused)
from radio.guard import GuardRule, TxGuard
from radio.loopback import LoopbackRadio

__all__ = [
    "Capabilities", "Radio", "RadioSettings", "Range", "Reception", "RxMetadata", "TxReport",
    "RadioConfigError", "RadioDisconnected", "RadioError", "RadioFault", "RadioOverflow", "RadioTimeout",
    "RadioUnderflow", "RecordingError", "TxGuardRefused", "GuardRule", "TxGuard", "LoopbackRadio",
]
