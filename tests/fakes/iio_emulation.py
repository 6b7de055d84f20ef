"""An ADALM-Pluto emulated at libiio's attribute and buffer layer, below the real pyadi-iio and pylibiio.

libiio 0.x opens an ``xml:`` context (``pluto_context.xml``, the devices, channels, scan-element formats and
context attributes of a Pluto) but answers ENOSYS to every attribute read/write, timeout and buffer call.
:class:`IioEmulator` replaces exactly those ctypes entry points of the ``iio`` module (``_c_read_attr``,
``_d_write_attr``, ``_create_buffer``, ``_buffer_refill``, ``_buffer_push_partial``, ``_c_read`` ...), so that
``adi.Pluto`` and ``iio.Buffer`` / ``iio.Channel`` run unmodified: channel enables, sample sizes and data formats
still come from libiio itself. Behind them, :class:`PlutoState` applies the rules of the AD9361 Linux driver:

- LO range by chip model (``ad9361-phy,model``: ad9363a 325 MHz-3.8 GHz, ad9364 70 MHz-6 GHz), else EINVAL;
- RX ``hardwaregain`` takes the integer part of the value, within ``hardwaregain_available``, else EINVAL, and
  a write outside ``manual`` gain control returns success and changes nothing (as ``ad9361_set_rx_gain`` does);
  in AGC modes the attribute reads the gain the AGC chose;
- TX ``hardwaregain`` is an attenuation: > 0 dB or < -89.75 dB is EINVAL, the rest truncates to 0.25 dB steps;
- ``rf_bandwidth`` is clamped to 200 kHz ... 20 MHz (ad9363a) or 56 MHz (ad9364);
- ``sampling_frequency`` goes through ``ad9361_calculate_rf_clock_chain`` (ADC clock 25-640 MHz with the
  12/8/6/4/3/2/1 HB dividers, times the FIR decimation when the FIR is enabled) and a 40 MHz reference through the
  fractional BBPLL, so a rate below 25 MHz / 12 = 2.083 MS/s is EINVAL unless the FIR decimates by 4, and the
  rate reads back as the divided clock; ``tx_path_rates`` / ``rx_path_rates`` report that chain;
- ``filter_fir_config`` parses ``RX n GAIN g DEC d`` / ``TX n GAIN g INT i`` and the taps (at most 128, a multiple
  of 16); ``voltage_filter_fir_en`` = 1 validates the FIR against the clock chain (ADC/2 / rate * 16 >= taps);
- writes to ``*_available`` and other read-only attributes are EACCES, as sysfs answers;
- one buffer per device (EBUSY), at least one enabled scan channel (EINVAL), a cyclic TX buffer is pushed once
  (EBUSY after), as libiio's local backend does;
- an RX buffer streams into ``kernel_buffers`` blocks (libiio's default 4, ``set_kernel_buffers_count``): the
  blocks fill as soon as the buffer is created, and each refill hands back the oldest full block and re-queues
  one that fills now, so after a change (a new TX buffer, a gain) the next ``kernel_buffers - 1`` refills still
  return what was captured before it.

The TX buffer loops back to RX through a cable: the DAC keeps the 12 MSBs of each int16 word, the path gain is
``tx hardwaregain - cable_loss_db + rx gain``, a TX/RX LO difference rotates the signal (and drops it when it
falls outside the RF bandwidth), thermal noise is added, and the ADC returns 12-bit codes -2048..2047 already
sign-extended in 16-bit words, as the HDL delivers them (scan format ``le:S12/16>>0``: the upper-case S tells
libiio the word is fully defined, so its channel conversion passes it through unchanged).
Not emulated: the DDS tone generators (pyadi-iio switches them off before the first push), LO quantisation, the
FPGA decimate-by-8 filter's effect on data, RF filtering of in-band signals.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

PLUTO_CONTEXT_XML = Path(__file__).with_name("pluto_context.xml")
"""The emulated Pluto's context: open it with ``adi.Pluto(uri=f"xml:{PLUTO_CONTEXT_XML}")``."""

REFCLK_HZ = 40_000_000
BBPLL_MODULUS = 2_088_960
MIN_BBPLL_HZ, MAX_BBPLL_HZ = 715_000_000, 1_430_000_000
MIN_ADC_CLK_HZ, MAX_ADC_CLK_HZ = 25_000_000, 640_000_000
MAX_DAC_CLK_HZ = MAX_ADC_CLK_HZ // 2
MAX_SAMPLE_RATE = 61_440_000
_HB_DIVIDERS = ((12, 3, 2, 2), (8, 2, 2, 2), (6, 3, 1, 2), (4, 2, 2, 1), (3, 3, 1, 1), (2, 2, 1, 1), (1, 1, 1, 1))
_RX_GAIN_MODES = ("manual", "fast_attack", "slow_attack", "hybrid")
_LO_RANGES = {"ad9363a": (325_000_000, 3_800_000_000), "ad9364": (70_000_000, 6_000_000_000),
              "ad9361": (70_000_000, 6_000_000_000)}
_MAX_RF_BW = {"ad9363a": 20_000_000, "ad9364": 56_000_000, "ad9361": 56_000_000}
_RX_GAIN_RANGE = (-3, 71)  # full gain table, 1.3-4 GHz band
_READ_ONLY = {"rssi", "rx_path_rates", "tx_path_rates", "input", "samples_pps"}
_AGC_TARGET_DBFS = -12.0
_RX_DEV, _TX_DEV, _PHY_DEV = "cf-ad9361-lpc", "cf-ad9361-dds-core-lpc", "ad9361-phy"


class DriverError(OSError):
    """An errno the emulated driver or libiio answers; raised to Python as libiio's errcheck would."""

    def __init__(self, code: int, why: str = ""):
        super().__init__(code, os.strerror(code) + (f" ({why})" if why else ""))


def _parse_iio_number(text: str) -> tuple[int, int]:
    """Split ``"-10.25"`` into (integer part, micro part), both carrying the sign, as the IIO core does."""
    m = re.fullmatch(r"\s*([-+]?)(\d*)(?:\.(\d*))?\s*(?:dB)?\s*", text)
    if not m or not (m.group(2) or m.group(3)):
        raise DriverError(errno.EINVAL, f"not a number: {text!r}")
    sign = -1 if m.group(1) == "-" else 1
    micro = int(((m.group(3) or "") + "000000")[:6])
    return sign * int(m.group(2) or 0), sign * micro


def _parse_int(text: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise DriverError(errno.EINVAL, f"not an integer: {text!r}") from None


@dataclass
class ClockChain:
    """The AD9361 baseband clock chain for one sample rate (Hz), as ``ad9361_calculate_rf_clock_chain`` sets it."""

    bbpll: int
    rx: tuple[int, int, int, int, int]
    tx: tuple[int, int, int, int, int]

    @property
    def rx_rate(self) -> int:
        return self.rx[-1]

    def describe(self) -> tuple[str, str]:
        r, t = self.rx, self.tx
        return (f"BBPLL:{self.bbpll} ADC:{r[0]} R2:{r[1]} R1:{r[2]} RF:{r[3]} RXSAMP:{r[4]}",
                f"BBPLL:{self.bbpll} DAC:{t[0]} T2:{t[1]} T1:{t[2]} TF:{t[3]} TXSAMP:{t[4]}")


def clock_chain(rate: int, fir_intdec: int, low_power: bool = False) -> ClockChain:
    """Dividers for ``rate`` with the FIR decimating by ``fir_intdec`` (1 when bypassed); EINVAL when none fit."""
    if rate <= 0 or rate > MAX_SAMPLE_RATE:
        raise DriverError(errno.EINVAL, f"sample rate {rate}")
    clktf = rate * fir_intdec
    index_rx = index_tx = -1
    adc = dac = 0
    for i in range(1 if low_power else 0, 7):
        adc = clktf * _HB_DIVIDERS[i][0]
        if MIN_ADC_CLK_HZ <= adc <= MAX_ADC_CLK_HZ:
            if adc <= MAX_DAC_CLK_HZ:
                index_rx = index_tx = i
                dac = adc
            else:
                dac, index_rx, index_tx = adc // 2, i, i + 2
            break
    if not 0 <= index_tx <= 6:
        if not low_power:
            return clock_chain(rate, fir_intdec, True)
        raise DriverError(errno.EINVAL, f"no clock dividers for {rate} S/s with FIR decimation {fir_intdec}")
    div = 64
    while True:
        bbpll_target = adc * div
        div >>= 1
        if not (bbpll_target > MAX_BBPLL_HZ and div >= 2):
            break
    integer, rem = divmod(bbpll_target, REFCLK_HZ)
    fract = (rem * BBPLL_MODULUS + REFCLK_HZ // 2) // REFCLK_HZ
    bbpll = REFCLK_HZ * fract // BBPLL_MODULUS + REFCLK_HZ * integer
    adc_div = max(1, round(bbpll / adc))

    def chain(first_div: int, index: int) -> tuple[int, int, int, int, int]:
        clk = bbpll // first_div
        out = [clk]
        for d in _HB_DIVIDERS[index][1:]:
            clk //= d
            out.append(clk)
        out.append(clk // fir_intdec)
        return tuple(out)  # type: ignore[return-value]

    dac_div = adc_div * (2 if dac != adc else 1)
    return ClockChain(bbpll, chain(adc_div, index_rx), chain(dac_div, index_tx))


@dataclass
class FirConfig:
    rx_dec: int = 1
    tx_int: int = 1
    rx_taps: int = 0
    tx_taps: int = 0
    rx_gain_db: int = 0
    tx_gain_db: int = 0

    @classmethod
    def parse(cls, text: str) -> "FirConfig":
        """Parse a ``filter_fir_config`` write the way ``ad9361_parse_fir`` does; EINVAL on a bad file."""
        cfg, taps = cls(), 0
        tx_seen = rx_seen = False
        for line in text.split("\n"):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if m := re.fullmatch(r"TX\s+(\d+)\s+GAIN\s+(-?\d+)\s+INT\s+(\d+)", line):
                cfg.tx_gain_db, cfg.tx_int, tx_seen = int(m.group(2)), int(m.group(3)), True
            elif m := re.fullmatch(r"RX\s+(\d+)\s+GAIN\s+(-?\d+)\s+DEC\s+(\d+)", line):
                cfg.rx_gain_db, cfg.rx_dec, rx_seen = int(m.group(2)), int(m.group(3)), True
            elif re.fullmatch(r"-?\d+\s*(,\s*-?\d+)?", line):
                taps += 1
        if not (tx_seen and rx_seen):
            raise DriverError(errno.EINVAL, "FIR file without TX and RX headers")
        if taps == 0 or taps > 128 or taps % 16:
            raise DriverError(errno.EINVAL, f"FIR with {taps} taps; allowed 16..128 in steps of 16")
        cfg.rx_taps = cfg.tx_taps = taps
        return cfg


@dataclass
class _Buffer:
    """An open libiio buffer: its memory and the channels (by scan index) enabled when it was created."""

    state: "PlutoState"
    device: str
    samples: int
    cyclic: bool
    channels: list[tuple[str, int, ctypes.c_void_p]]  # (channel id, scan index, channel pointer)
    sample_size: int
    memory: Any = None
    pushed: bool = False
    blocks: list[np.ndarray] = field(default_factory=list)
    """RX: full kernel blocks waiting for a refill, oldest first, as (samples, 2) int16 I/Q ADC codes."""
    refills: int = 0

    def __post_init__(self) -> None:
        self.memory = (ctypes.c_char * (self.samples * self.sample_size))()

    @property
    def start(self) -> int:
        return ctypes.addressof(self.memory)

    def words(self) -> np.ndarray:
        """The buffer as (samples, channels) little-endian 16-bit words (every Pluto scan element is 16 bits)."""
        return np.frombuffer(self.memory, dtype="<i2").reshape(self.samples, len(self.channels))


@dataclass
class PlutoState:
    """One emulated Pluto: attribute values (from the context XML), driver rules, buffers and the RF loop."""

    attrs: dict[tuple[str, str | None, bool | None, str], str]
    context_attrs: dict[str, str]
    cable_loss_db: float = 50.0
    """Attenuation between TX and RX ports (a cable with an attenuator), dB."""
    noise_rms_codes: float = 1.0
    """Thermal noise at the ADC per I and Q, in 12-bit codes, independent of the RX gain."""
    seed: int = 1
    timeout_ms: int | None = None
    fir: FirConfig = field(default_factory=FirConfig)
    fir_enabled: bool = False
    agc_gain_db: int = 71
    buffers: dict[str, _Buffer] = field(default_factory=dict)
    tx_wave: np.ndarray | None = None
    tx_cyclic: bool = False
    tx_pos: int = 0
    rx_time: int = 0
    pushes: list[np.ndarray] = field(default_factory=list)
    """Every TX push, as the int16 I/Q words the DAC received: (n, 2) arrays."""
    injected: dict[str, int] = field(default_factory=dict)
    """Operation name ('refill', 'push', 'create_buffer', 'attr') -> errno its next call fails with."""
    kernel_buffers: dict[str, int] = field(default_factory=dict)
    """Device name -> kernel block count set with set_kernel_buffers_count (libiio's default is 4)."""

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.context_attrs.get("ad9361-phy,model", "ad9363a")

    # ---- attributes ---------------------------------------------------------------------------------------------
    def _phy(self, chan: str, output: bool, name: str) -> str:
        return self.attrs[(_PHY_DEV, chan, output, name)]

    def _set_phy(self, chan: str, output: bool, name: str, value: str) -> None:
        self.attrs[(_PHY_DEV, chan, output, name)] = value

    @property
    def sample_rate(self) -> int:
        return int(self._phy("voltage0", False, "sampling_frequency"))

    def rx_gain_db(self) -> float:
        if self._phy("voltage0", False, "gain_control_mode") == "manual":
            return float(_parse_iio_number(self._phy("voltage0", False, "hardwaregain"))[0])
        return float(self.agc_gain_db)

    def tx_gain_db(self) -> float:
        whole, micro = _parse_iio_number(self._phy("voltage0", True, "hardwaregain"))
        return whole + micro / 1e6

    def _fir_intdec(self, enabled: bool, fir: FirConfig) -> int:
        if not enabled:
            return 1
        if fir.tx_int != fir.rx_dec:
            raise DriverError(errno.EINVAL, f"TRX FIR decimation / interpolation mismatch {fir.rx_dec},{fir.tx_int}")
        return fir.rx_dec

    def _validate_fir(self, rate: int, fir: FirConfig) -> ClockChain:
        if fir.rx_taps == 0:
            raise DriverError(errno.EINVAL, "no FIR loaded")
        if fir.tx_int not in (1, 2, 4) or fir.rx_dec not in (1, 2, 4):
            raise DriverError(errno.EINVAL, f"FIR decimation {fir.rx_dec} / interpolation {fir.tx_int}")
        if fir.tx_int == 1 and fir.tx_taps > 64:
            raise DriverError(errno.EINVAL, "TAPS > 64 and interpolation 1")
        chain = clock_chain(rate, self._fir_intdec(True, fir))
        max_taps = (chain.rx[0] // 2 // chain.tx[4]) * 16
        if fir.tx_taps > max_taps or fir.rx_taps > (chain.rx[0] // 2 // chain.rx[4]) * 16:
            raise DriverError(errno.EINVAL, f"ratio ADC/2 / rate * 16 = {max_taps} < {fir.tx_taps} taps")
        return chain

    def _apply_chain(self, chain: ClockChain) -> None:
        rate = str(chain.rx_rate)
        for output in (False, True):
            self._set_phy("voltage0", output, "sampling_frequency", rate)
        rx_rates, tx_rates = chain.describe()
        self.attrs[(_PHY_DEV, None, None, "rx_path_rates")] = rx_rates
        self.attrs[(_PHY_DEV, None, None, "tx_path_rates")] = tx_rates
        for dev in (_RX_DEV, _TX_DEV):
            for key in [k for k in self.attrs if k[0] == dev and k[3] == "sampling_frequency"]:
                self.attrs[key] = rate
            for key in [k for k in self.attrs if k[0] == dev and k[3] == "sampling_frequency_available"]:
                self.attrs[key] = f"{chain.rx_rate} {chain.rx_rate // 8}"

    def read_attr(self, dev: str, chan: str | None, output: bool | None, name: str) -> str:
        key = (dev, chan, output, name)
        if key not in self.attrs:
            raise DriverError(errno.ENOENT, f"{dev} {chan} {name}")
        if dev == _PHY_DEV and chan == "voltage0" and output is False and name == "hardwaregain":
            if self._phy("voltage0", False, "gain_control_mode") != "manual":
                return f"{self.agc_gain_db}.000000 dB"
        if dev == _PHY_DEV and chan is None and name == "filter_fir_config":
            return f"FIR Rx: {self.fir.rx_taps},{self.fir.rx_dec} Tx: {self.fir.tx_taps},{self.fir.tx_int}"
        return self.attrs[key]

    def write_attr(self, dev: str, chan: str | None, output: bool | None, name: str, value: str) -> None:
        key = (dev, chan, output, name)
        if self.injected.get("attr"):
            raise DriverError(self.injected.pop("attr"))
        if key not in self.attrs:
            raise DriverError(errno.ENOENT, f"{dev} {chan} {name}")
        if name.endswith("_available") or name in _READ_ONLY:
            raise DriverError(errno.EACCES, f"{name} is read-only")
        if dev == _PHY_DEV:
            self._write_phy(chan, output, name, value)
        elif name == "sampling_frequency" and dev in (_RX_DEV, _TX_DEV) and chan and chan.startswith("voltage"):
            allowed = self.attrs[(dev, chan, output, "sampling_frequency_available")].split()
            if value.strip() not in allowed:
                raise DriverError(errno.EINVAL, f"{value} not in {allowed}")
            self.attrs[key] = value.strip()
        else:
            self.attrs[key] = value.strip()

    def _write_phy(self, chan: str | None, output: bool | None, name: str, value: str) -> None:
        if chan in ("altvoltage0", "altvoltage1") and name == "frequency":
            hz = _parse_int(value)
            lo, hi = _LO_RANGES[self.model]
            if not lo <= hz <= hi:
                raise DriverError(errno.EINVAL, f"LO {hz} Hz outside {lo}..{hi} for {self.model}")
            self._set_phy(chan, True, name, str(hz))
        elif chan == "voltage0" and name == "hardwaregain" and output is False:
            gain, _ = _parse_iio_number(value)
            if self._phy("voltage0", False, "gain_control_mode") != "manual":
                return  # ad9361_set_rx_gain: "Rx gain can be set in MGC mode only", and returns 0
            if not _RX_GAIN_RANGE[0] <= gain <= _RX_GAIN_RANGE[1]:
                raise DriverError(errno.EINVAL, f"RX gain {gain} dB outside {_RX_GAIN_RANGE}")
            self._set_phy("voltage0", False, name, f"{gain}.000000 dB")
        elif chan == "voltage0" and name == "hardwaregain" and output is True:
            whole, micro = _parse_iio_number(value)
            if whole > 0 or (whole == 0 and micro > 0):
                raise DriverError(errno.EINVAL, f"TX gain {value} dB > 0")
            mdb = abs(whole) * 1000 + abs(micro) // 1000
            if mdb > 89_750:
                raise DriverError(errno.EINVAL, f"TX attenuation {mdb} mdB > 89750")
            mdb = mdb // 250 * 250
            self._set_phy("voltage0", True, name, f"{-mdb / 1000:.6f} dB")
        elif chan == "voltage0" and name == "gain_control_mode":
            if value.strip() not in _RX_GAIN_MODES:
                raise DriverError(errno.EINVAL, f"gain_control_mode {value!r}")
            self._set_phy("voltage0", False, name, value.strip())
        elif chan == "voltage0" and name == "rf_bandwidth":
            bw = min(max(_parse_int(value), 200_000), _MAX_RF_BW[self.model])
            self._set_phy("voltage0", bool(output), name, str(bw))
        elif chan == "voltage0" and name == "sampling_frequency":
            chain = clock_chain(_parse_int(value), self._fir_intdec(self.fir_enabled, self.fir))
            if self.fir_enabled:
                chain = self._validate_fir(_parse_int(value), self.fir)
            self._apply_chain(chain)
        elif (chan == "out" and name == "voltage_filter_fir_en") or (chan == "voltage0" and name == "filter_fir_en"):
            enable = _parse_int(value) != 0
            rate = self.sample_rate
            chain = self._validate_fir(rate, self.fir) if enable else clock_chain(rate, 1)
            self.fir_enabled = enable
            self._apply_chain(chain)
            for key in [k for k in self.attrs if k[0] == _PHY_DEV and k[3] in ("filter_fir_en", "voltage_filter_fir_en")]:
                self.attrs[key] = "1" if enable else "0"
        elif chan is None and name == "filter_fir_config":
            fir = FirConfig.parse(value)
            if self.fir_enabled:
                self._validate_fir(self.sample_rate, fir)
            self.fir = fir
        else:
            self.attrs[(_PHY_DEV, chan, output, name)] = value.strip()

    # ---- buffers and the RF loop -----------------------------------------------------------------------------
    def create_buffer(self, buf: _Buffer) -> None:
        if self.injected.get("create_buffer"):
            raise DriverError(self.injected.pop("create_buffer"))
        if buf.device not in (_RX_DEV, _TX_DEV):
            raise DriverError(errno.ENOENT, f"{buf.device} has no buffer")
        if not buf.channels:
            raise DriverError(errno.EINVAL, "no channel enabled")
        if buf.samples <= 0:
            raise DriverError(errno.EINVAL, f"buffer of {buf.samples} samples")
        if buf.device in self.buffers:
            raise DriverError(errno.EBUSY, f"{buf.device} already has a buffer open")
        self.buffers[buf.device] = buf
        if buf.device == _RX_DEV:  # the DMA starts filling every kernel block at once
            buf.blocks = [self._capture(buf.samples) for _ in range(self.kernel_buffers.get(buf.device, 4))]

    def destroy_buffer(self, buf: _Buffer) -> None:
        if self.buffers.get(buf.device) is buf:
            del self.buffers[buf.device]
            if buf.device == _TX_DEV:
                self.tx_wave = None  # closing the DMA buffer stops the DAC data

    def push(self, buf: _Buffer, samples: int) -> int:
        if self.injected.get("push"):
            raise DriverError(self.injected.pop("push"))
        if buf.device != _TX_DEV:
            raise DriverError(errno.EINVAL, "push on an input buffer")
        if not 0 < samples <= buf.samples:
            raise DriverError(errno.EINVAL, f"push of {samples} samples into a {buf.samples}-sample buffer")
        if buf.cyclic and buf.pushed:
            raise DriverError(errno.EBUSY, "cyclic buffer already enqueued")
        words = buf.words()[:samples]
        ids = [c[0] for c in buf.channels]
        iq = np.zeros((samples, 2), np.int16)
        for col, cid in enumerate(ids):
            if cid in ("voltage0", "voltage1"):
                iq[:, int(cid[-1])] = words[:, col]
        buf.pushed = True
        self.pushes.append(iq.copy())
        self.tx_wave = iq
        self.tx_cyclic = buf.cyclic
        self.tx_pos = 0
        return samples * buf.sample_size

    def _tx_samples(self, n: int) -> np.ndarray:
        """The next ``n`` DAC samples as complex 12-bit codes (zeros where nothing is sent)."""
        out = np.zeros(n, np.complex128)
        wave = self.tx_wave
        if wave is None:
            return out
        dac = (wave >> 4).astype(np.float64)  # the AD9361 DAC keeps the 12 MSBs of each 16-bit word
        iq = dac[:, 0] + 1j * dac[:, 1]
        if self.tx_cyclic:
            out[:] = iq[(self.tx_pos + np.arange(n)) % iq.size]
            self.tx_pos = (self.tx_pos + n) % iq.size
        else:
            take = min(n, iq.size - self.tx_pos)
            out[:take] = iq[self.tx_pos:self.tx_pos + take]
            self.tx_pos += take
        return out

    def refill(self, buf: _Buffer) -> int:
        if self.injected.get("refill"):
            raise DriverError(self.injected.pop("refill"))
        if buf.device != _RX_DEV:
            raise DriverError(errno.EINVAL, "refill on an output buffer")
        if buf.refills:  # the block handed out last time goes back to the DMA and fills now
            buf.blocks.append(self._capture(buf.samples))
        buf.refills += 1
        codes = buf.blocks.pop(0)
        words = buf.words()
        for col, (cid, _, _) in enumerate(buf.channels):
            words[:, col] = codes[:, int(cid[-1])]  # sign-extended 12-bit, LSB-aligned
        return buf.samples * buf.sample_size

    def _capture(self, n: int) -> np.ndarray:
        """``n`` samples of what the ADC sees now: (n, 2) int16 I/Q codes, -2048..2047."""
        rate = self.sample_rate
        x = self._tx_samples(n)
        offset_hz = int(self._phy("altvoltage1", True, "frequency")) - int(self._phy("altvoltage0", True, "frequency"))
        rx_bw = int(self._phy("voltage0", False, "rf_bandwidth"))
        tx_bw = int(self._phy("voltage0", True, "rf_bandwidth"))
        if abs(offset_hz) > min(rx_bw, tx_bw, rate) / 2:
            x[:] = 0
        elif offset_hz:
            t = (self.rx_time + np.arange(n)) / rate
            x = x * np.exp(2j * np.pi * offset_hz * t)
        self.rx_time += n
        path_db = self.tx_gain_db() - self.cable_loss_db
        if self._phy("voltage0", False, "gain_control_mode") != "manual":
            rms = float(np.sqrt(np.mean(np.abs(x) ** 2))) * 10 ** (path_db / 20)
            want = 2048 * 10 ** (_AGC_TARGET_DBFS / 20)
            gain = 20 * math.log10(want / rms) if rms > 0 else _RX_GAIN_RANGE[1]
            self.agc_gain_db = int(min(max(round(gain), _RX_GAIN_RANGE[0]), _RX_GAIN_RANGE[1]))
        y = x * 10 ** ((path_db + self.rx_gain_db()) / 20)
        y = y + self.noise_rms_codes * (self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n))
        return np.stack([np.clip(np.round(y.real), -2048, 2047),
                         np.clip(np.round(y.imag), -2048, 2047)], axis=1).astype(np.int16)


def _load_context(xml_path: Path) -> tuple[dict[tuple[str, str | None, bool | None, str], str], dict[str, str]]:
    root = ET.parse(xml_path).getroot()
    ctx_attrs = {a.get("name", ""): a.get("value", "") for a in root.findall("context-attribute")}
    attrs: dict[tuple[str, str | None, bool | None, str], str] = {}
    for dev in root.findall("device"):
        name = dev.get("name") or dev.get("id", "")
        for a in dev.findall("attribute"):
            attrs[(name, None, None, a.get("name", ""))] = a.get("value", "")
        for a in dev.findall("debug-attribute"):
            attrs[(name, None, None, "debug:" + a.get("name", ""))] = a.get("value", "")
        for a in dev.findall("buffer-attribute"):
            attrs[(name, None, None, "buffer:" + a.get("name", ""))] = a.get("value", "")
        for ch in dev.findall("channel"):
            out = ch.get("type") == "output"
            for a in ch.findall("attribute"):
                attrs[(name, ch.get("id"), out, a.get("name", ""))] = a.get("value", "")
    return attrs, ctx_attrs


_PATCHED = ("_c_read_attr", "_c_write_attr", "_d_read_attr", "_d_write_attr", "_d_read_debug_attr",
            "_d_write_debug_attr", "_d_read_buffer_attr", "_d_write_buffer_attr", "_set_timeout", "_create_buffer",
            "_buffer_destroy", "_buffer_refill", "_buffer_push_partial", "_buffer_start", "_buffer_end",
            "_buffer_step", "_buffer_cancel", "_buffer_set_blocking_mode", "_buffer_get_poll_fd", "_c_read",
            "_c_read_raw", "_c_write", "_c_write_raw", "_d_set_buffers_count")


class IioEmulator:
    """Installs the emulation into a real ``iio`` module; :meth:`state_for` gives the Pluto behind a context.

    Every context whose ``hw_serial`` matches an XML file added with :meth:`add_pluto` is that Pluto; two contexts
    on the same serial share one state, as two handles on one device do.
    """

    def __init__(self, iio: ModuleType):
        self.iio = iio
        self._templates: dict[str, Path] = {}
        self._states: dict[str, PlutoState] = {}
        self._saved: dict[str, Any] = {}
        self.options: dict[str, Any] = {}

    # ---- set-up ---------------------------------------------------------------------------------------------
    def add_pluto(self, xml_path: Path = PLUTO_CONTEXT_XML, **options: Any) -> str:
        """Register a context file; ``options`` go to :class:`PlutoState` (cable_loss_db, noise_rms_codes ...).
        Returns the URI to open it with."""
        _, ctx_attrs = _load_context(xml_path)
        serial = ctx_attrs["hw_serial"]
        self._templates[serial] = xml_path
        self.options[serial] = options
        return f"xml:{xml_path}"

    def install(self) -> "IioEmulator":
        for name in _PATCHED:
            self._saved[name] = getattr(self.iio, name)
            setattr(self.iio, name, getattr(self, name))
        return self

    def uninstall(self) -> None:
        """Restore libiio's calls; an emulated buffer that Python frees later is then simply dropped."""
        for name, fn in self._saved.items():
            setattr(self.iio, name, fn)
        real_destroy = self._saved.get("_buffer_destroy")
        if real_destroy is not None and not getattr(real_destroy, "drops_emulated_buffers", False):
            def destroy(buf: Any, _real: Any = real_destroy) -> None:
                if not isinstance(buf, _Buffer):
                    _real(buf)

            destroy.drops_emulated_buffers = True  # type: ignore[attr-defined]
            self.iio._buffer_destroy = destroy
        self._saved.clear()

    # ---- resolving libiio pointers -------------------------------------------------------------------------
    def _context_serial(self, ctx_ptr: Any) -> str:
        iio = self.iio
        for i in range(iio._get_attrs_count(ctx_ptr)):
            key, val = ctypes.c_char_p(), ctypes.c_char_p()
            iio._get_attr(ctx_ptr, i, ctypes.byref(key), ctypes.byref(val))
            if key.value == b"hw_serial":
                return (val.value or b"").decode()
        raise DriverError(errno.ENODEV, "context without hw_serial")

    def state_for(self, device_or_context: Any) -> PlutoState:
        """The emulated Pluto behind an ``iio.Context``, ``iio.Device``, an ``adi.Pluto`` or a libiio pointer."""
        obj = device_or_context
        if hasattr(obj, "ctx") and not isinstance(obj, self.iio.Device):
            obj = obj.ctx
        ptr = getattr(obj, "_context", None) or getattr(obj, "_device", None) or obj
        if isinstance(obj, self.iio.Device) or isinstance(ptr, ctypes.POINTER(self.iio._Device)):
            ptr = self.iio._d_get_context(ptr)
        serial = self._context_serial(ptr)
        if serial not in self._states:
            if serial not in self._templates:
                raise DriverError(errno.ENODEV, f"no emulated Pluto with serial {serial}")
            attrs, ctx_attrs = _load_context(self._templates[serial])
            self._states[serial] = PlutoState(attrs, ctx_attrs, **self.options.get(serial, {}))
        return self._states[serial]

    def _dev_name(self, dev_ptr: Any) -> str:
        name = self.iio._d_get_name(dev_ptr)
        return (name or self.iio._d_get_id(dev_ptr)).decode()

    def _chan_key(self, chn_ptr: Any) -> tuple[PlutoState, str, str, bool]:
        dev_ptr = self.iio._channel_get_device(chn_ptr)
        return (self.state_for(dev_ptr), self._dev_name(dev_ptr), self.iio._c_get_id(chn_ptr).decode(),
                bool(self.iio._c_is_output(chn_ptr)))

    @staticmethod
    def _answer(text: str, dst: Any, size: int) -> int:
        data = text.encode("ascii")
        if len(data) + 1 > size:
            raise DriverError(errno.EFBIG, "attribute value longer than the read buffer")
        ctypes.memmove(dst, data + b"\0", len(data) + 1)
        return len(data) + 1

    # ---- attribute entry points (signatures of the libiio C calls) -----------------------------------------
    def _c_read_attr(self, chn: Any, name: bytes, dst: Any, size: int) -> int:
        state, dev, cid, out = self._chan_key(chn)
        with state.lock:
            return self._answer(state.read_attr(dev, cid, out, name.decode()), dst, size)

    def _c_write_attr(self, chn: Any, name: bytes, value: bytes) -> int:
        state, dev, cid, out = self._chan_key(chn)
        with state.lock:
            state.write_attr(dev, cid, out, name.decode(), value.decode())
        return len(value) + 1

    def _dev_attr(self, prefix: str, dev_ptr: Any, name: bytes, dst: Any = None, size: int = 0,
                  value: bytes | None = None) -> int:
        state, dev = self.state_for(dev_ptr), self._dev_name(dev_ptr)
        with state.lock:
            if value is None:
                return self._answer(state.read_attr(dev, None, None, prefix + name.decode()), dst, size)
            state.write_attr(dev, None, None, prefix + name.decode(), value.decode())
            return len(value) + 1

    def _d_read_attr(self, dev: Any, name: bytes, dst: Any, size: int) -> int:
        return self._dev_attr("", dev, name, dst, size)

    def _d_write_attr(self, dev: Any, name: bytes, value: bytes) -> int:
        return self._dev_attr("", dev, name, value=value)

    def _d_read_debug_attr(self, dev: Any, name: bytes, dst: Any, size: int) -> int:
        return self._dev_attr("debug:", dev, name, dst, size)

    def _d_write_debug_attr(self, dev: Any, name: bytes, value: bytes) -> int:
        return self._dev_attr("debug:", dev, name, value=value)

    def _d_read_buffer_attr(self, dev: Any, name: bytes, dst: Any, size: int) -> int:
        return self._dev_attr("buffer:", dev, name, dst, size)

    def _d_write_buffer_attr(self, dev: Any, name: bytes, value: bytes) -> int:
        return self._dev_attr("buffer:", dev, name, value=value)

    def _d_set_buffers_count(self, dev_ptr: Any, count: int) -> int:
        if int(count) < 1:
            raise DriverError(errno.EINVAL, f"kernel buffers count {count}")
        self.state_for(dev_ptr).kernel_buffers[self._dev_name(dev_ptr)] = int(count)
        return 0

    def _set_timeout(self, ctx: Any, timeout_ms: int) -> int:
        self.state_for(ctx).timeout_ms = int(timeout_ms)
        return 0

    # ---- buffer entry points -------------------------------------------------------------------------------
    def _create_buffer(self, dev_ptr: Any, samples: int, cyclic: bool) -> _Buffer:
        iio = self.iio
        state = self.state_for(dev_ptr)
        channels = []
        for i in range(iio._channels_count(dev_ptr)):
            chn = iio._get_channel(dev_ptr, i)
            if iio._c_is_scan_element(chn) and iio._c_is_enabled(chn):
                channels.append((iio._c_get_id(chn).decode(), int(iio._channel_get_index(chn)), chn))
        channels.sort(key=lambda c: c[1])
        size = int(iio._get_sample_size(dev_ptr)) if channels else 0
        buf = _Buffer(state, self._dev_name(dev_ptr), int(samples), bool(cyclic), channels, size)
        with state.lock:
            state.create_buffer(buf)
        return buf

    def _buffer_destroy(self, buf: _Buffer) -> None:
        with buf.state.lock:
            buf.state.destroy_buffer(buf)

    def _buffer_refill(self, buf: _Buffer) -> int:
        with buf.state.lock:
            return buf.state.refill(buf)

    def _buffer_push_partial(self, buf: _Buffer, samples: int) -> int:
        with buf.state.lock:
            return buf.state.push(buf, int(samples))

    def _buffer_start(self, buf: _Buffer) -> int:
        return buf.start

    def _buffer_end(self, buf: _Buffer) -> int:
        return buf.start + buf.samples * buf.sample_size

    def _buffer_step(self, buf: _Buffer) -> int:
        return buf.sample_size

    def _buffer_cancel(self, buf: _Buffer) -> None:
        return None

    def _buffer_set_blocking_mode(self, buf: _Buffer, blocking: Any) -> int:
        return 0

    def _buffer_get_poll_fd(self, buf: _Buffer) -> int:
        raise DriverError(errno.ENOSYS, "no poll fd in the emulation")

    def _column(self, chn: Any, buf: _Buffer) -> int | None:
        cid = self.iio._c_get_id(chn).decode()
        for col, (other, _, _) in enumerate(buf.channels):
            if other == cid:
                return col
        return None

    def _convert(self, chn: Any, words: np.ndarray) -> np.ndarray:
        """libiio's iio_channel_convert for 16-bit storage: byte order, shift, then sign-extend or mask, except for
        a "fully defined" format (upper-case ``S``/``U``: the hardware already extended the sign)."""
        fmt = self.iio._channel_get_data_format(chn).contents
        if fmt.length != 16:
            raise DriverError(errno.ENOSYS, f"{fmt.length}-bit storage is not emulated")
        raw = words.view(np.uint16).astype(np.uint32)
        if fmt.is_be:
            raw = ((raw & 0xFF) << 8) | (raw >> 8)
        raw >>= fmt.shift
        if fmt.is_fully_defined:
            return raw.astype(np.uint16).view(np.int16)
        raw &= (1 << fmt.bits) - 1
        if fmt.is_signed:
            sign = 1 << (fmt.bits - 1)
            return ((raw ^ sign) - sign).astype(np.int16)
        return raw.astype(np.uint16).view(np.int16)

    def _c_read(self, chn: Any, buf: _Buffer, dst: Any, size: int, raw: bool = False) -> int:
        col = self._column(chn, buf)
        if col is None:
            return 0
        data = buf.words()[:, col].copy()
        if not raw:
            data = self._convert(chn, data)
        payload = data.astype("<i2").tobytes()[:size]
        ctypes.memmove(dst, payload, len(payload))
        return len(payload)

    def _c_read_raw(self, chn: Any, buf: _Buffer, dst: Any, size: int) -> int:
        return self._c_read(chn, buf, dst, size, raw=True)

    def _c_write(self, chn: Any, buf: _Buffer, src: Any, size: int) -> int:
        col = self._column(chn, buf)
        if col is None:
            return 0
        n = min(size // 2, buf.samples)
        values = np.frombuffer(ctypes.string_at(src, n * 2), dtype="<i2")
        buf.words()[:n, col] = values
        return n * 2

    def _c_write_raw(self, chn: Any, buf: _Buffer, src: Any, size: int) -> int:
        return self._c_write(chn, buf, src, size)


def iio_available() -> tuple[ModuleType, ModuleType] | str:
    """``(iio, adi)`` when the real pylibiio, libiio and pyadi-iio import; otherwise why not."""
    try:
        import iio  # type: ignore[import-not-found]
    except (ImportError, OSError) as e:  # OSError: pylibiio present, libiio.so.0 missing
        return f"pylibiio / libiio not importable ({e}); pip install pylibiio==0.25 and apt-get install libiio0"
    except AttributeError as e:  # pylibiio 1.x against libiio 0.x: missing C symbols
        return f"pylibiio does not match the installed libiio ({e})"
    if getattr(iio, "version", (1,))[0] >= 1:
        return f"libiio {getattr(iio, 'version', '?')}: the emulation targets libiio 0.x (pylibiio 0.25)"
    try:
        import adi  # type: ignore[import-not-found]
    except ImportError as e:
        return f"pyadi-iio not importable ({e}); pip install pyadi-iio"
    return iio, adi

