"""Parameters of the simulated radios and the simulated air, and the parser of the ``[sim]`` TOML table.

Layout of the table::

    [sim]
    seed = 0                      # air keys
    tx_oversample = 4
    rx_oversample_max = 4
    loopback_path_loss_db = 40.0
    tx_evm = 0.02                 # radio keys at top level: defaults for every radio
    ...
    path_loss_db = 50.0           # link keys at top level: defaults for every link between two different radios
    ...

    [sim.radios.sim1]             # per-radio overrides of radio keys
    ppm = -1.5

    [sim.links."sim0->sim1"]      # per ordered pair (transmitter -> receiver) overrides of link keys
    path_loss_db = 70.0

Units: dB and dBm as named; "dBFS" is relative to digital full scale, where 0 dBFS is a mean power
``mean(|x|**2) = 1`` (a complex tone of amplitude 1.0, whose I and Q just reach the converter's +-1.0).
TOML ``inf`` / ``-inf`` switch some impairments off; each key's documentation says which.

Every field below carries its documentation as an attribute docstring; :func:`field_docs` reads them back so the
example configuration and ``--help`` texts are generated from one source.

Presets
-------
``preset = "pluto"`` / ``"b210"`` / ``"ideal"`` in ``[sim]`` (the defaults of every radio) or in
``[sim.radios.NAME]`` sets every impairment key of :data:`RADIO_PRESETS`. Precedence, weakest first: the built-in
defaults, the ``[sim]`` preset, explicit ``[sim]`` radio keys, the radio's own preset, the radio's explicit keys.
``ppm`` is not part of a preset: it stays drawn from ``ppm_spread`` unless given. ``"ideal"`` switches every
impairment off (thermal noise at the antenna stays: it is physics, not the radio). Values at 2.4 GHz:

================== ================== =========================================== ============================================
key                pluto              b210                                        datasheet figure -> mapping
================== ================== =========================================== ============================================
ppm_spread         25                 2                                           [P1] 40 MHz reference +-25 ppm; [B1]
                                                                                  frequency accuracy +-2.0 ppm (no GPSDO)
iq_gain_db         0.02               0.22                                        [A3]/[A1] RX quadrature gain error 0.2 %
iq_phase_deg       0.2                1.44                                        (Pluto, applied to TX: image -53.6 dB);
                                                                                  [B1] SSB suppression -35 dBc, split evenly
                                                                                  between gain and phase (image -35.0 dB)
lo_leakage_dbc     -50                -50                                         [A3]/[A1] TX carrier leakage -50 dBc at 0 dB
                                                                                  attenuation; [B1] LO suppression 50 dBc
phase_noise_dbc_hz -103.6             -96.2                                       [P2] integrated 0.3 deg rms (100 Hz-100 MHz);
 (offset, corner   (100 kHz, 100 kHz) (100 kHz, 100 kHz)                          [B1] 1.0 deg rms at 3.5 GHz, scaled by
 unchanged)                                                                       20 log10(f) to 0.70 deg at 2.45 GHz; level
                                                                                  at 100 kHz giving that rms with the
                                                                                  100 kHz PLL corner (no loop-bandwidth figure)
noise_figure_db    3.0                8.0                                         [A3] RX NF 3 dB at 2.4 GHz, max gain (board
                                                                                  measured 2.5 dB, [P2]); [B1] RX NF < 8 dB
lna_iip3_dbm       -14                -20                                         [A3] IIP3 -14 dBm at max gain; [B1] IIP3
                                                                                  -20 dBm at typical NF
tx_evm             0.02               0.01                                        [A3] EVM -34 dB; [A1] TX EVM -40 dB
rx_evm             0.02               0.01                                        [A3] EVM -34 dB; [A1] RX EVM -40 dB
dac_bits/adc_bits  12 / 12            12 / 12                                     [P1], [B1]: 12-bit DAC and ADC
tx_fullscale_dbm   7.0                10.0                                        [P1] max output power 7 dBm; [B1] > 10 dBm
pa_smoothness      1.0                1.0                                         Rapp p = 1, whose 3rd-order term maps an
pa_sat_dbfs        9.0                6.0                                         OIP3 exactly: A_sat^2 = OIP3 / 2, so
                                                                                  pa_sat_dbfs = OIP3 - tx_fullscale_dbm - 3;
                                                                                  [A1] TX OIP3 19 dBm
am_pm_deg          0                  0                                           no datasheet figure (transceiver output
                                                                                  stage, no external PA)
rx_fullscale_dbm   0.0                0.0                                         no datasheet figure (kept at the default)
================== ================== =========================================== ============================================

``ideal``: tx_evm = rx_evm = 0, pa_sat_dbfs = inf, am_pm_deg = 0, phase_noise_dbc_hz = -inf, ppm = 0,
ppm_spread = 0, iq_gain_db = iq_phase_deg = 0, lo_leakage_dbc = -inf, noise_figure_db = 0, lna_iip3_dbm = inf,
dac_bits = adc_bits = 24, tx_fullscale_dbm and rx_fullscale_dbm at their defaults.

Datasheet figures with no key here: RX IQ imbalance and RX residual DC offset (the simulated receiver has none;
the RX quadrature figures are used for the TX key), RX LO leakage at the RX input (-70 dBm, [A1]), TX noise
floor (-157 dBm/Hz, [P2]), IIP2, TX-to-RX isolation, and the rise of noise figure as RX gain is lowered (the
noise figure here is the maximum-gain figure at every RX gain). Sources: [P1] ADALM-PLUTO Detailed
Specifications (Analog Devices wiki); [P2] ADALM-PLUTO Receiver Sensitivity (Analog Devices wiki); [A3] AD9363
data sheet (Analog Devices), 2.4 GHz tables; [A1] AD9361 data sheet (Analog Devices), 2.4 GHz tables; [B1] Ettus
Research USRP B200/B210 spec sheet.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Mapping

from radio.errors import RadioConfigError


@dataclass(frozen=True)
class RadioParams:
    """The front-end impairments of one simulated radio. Defaults model a low-cost SDR (Pluto / B210 class)
    followed by a cheap PA: a few % EVM at moderate drive, an ACLR of about 30 dB at full drive."""

    tx_evm: float = 0.02
    """TX additive distortion as an RMS ratio (EVM, not %) relative to the transmitted signal, 0 <= value < 1.
    Realised as ``x * m(t)``: ``m`` a complex Gaussian process of RMS ``tx_evm`` whose spectrum is a Gaussian of
    standard deviation sample_rate / 64, so the distortion follows the signal's spectrum (in-band, per subcarrier)
    and is uncorrelated with it, as in the additive hardware-impairment model. 0 switches it off."""

    rx_evm: float = 0.01
    """RX additive distortion as an RMS ratio relative to the received signal (everything inside the receiver's
    band), 0 <= value < 1; realised like ``tx_evm`` after the mixer. 0 switches it off."""

    pa_smoothness: float = 2.0
    """Rapp PA smoothness ``p`` (0.1 to 100): |y| = |x| / (1 + (|x|/A_sat)^(2p))^(1/(2p)). 2-3 is typical of
    solid-state PAs; large values approach an ideal clipper."""

    pa_sat_dbfs: float = -5.0
    """Rapp PA output saturation amplitude A_sat as a power relative to DAC full scale (dBFS, -40 to 40). The PA is
    driven by the digital level (the TX gain acts after it), so the input back-off of a signal is
    ``pa_sat_dbfs - its RMS level in dBFS``. With -5: an OFDM signal at -10 dBFS RMS (peaks near full scale) has
    5 dB back-off and an ACLR1 near 30 dB; every dB of digital back-off improves it. ``inf`` makes the PA linear."""

    am_pm_deg: float = 0.0
    """PA AM/PM: phase rotation in degrees at the input amplitude |x| = A_sat (-90 to 90). The phase follows
    ``am_pm_deg * 2u / (1 + u)`` with ``u = (|x| / A_sat)^2`` (Saleh form), so it grows with the square of the
    amplitude at low drive. 0 switches it off."""

    phase_noise_dbc_hz: float = -100.0
    """Single-sideband phase noise of each LO (TX and RX separately) in dBc/Hz at ``phase_noise_offset_hz``
    (-200 to -30). The phase is a stationary Gaussian process with spectrum K / (f^2 + corner^2), i.e. flat inside
    the PLL bandwidth ``phase_noise_corner_hz`` and falling 20 dB/decade beyond, scaled to this value at the
    offset. ``-inf`` switches phase noise off."""

    phase_noise_offset_hz: float = 100e3
    """Offset from the carrier (Hz, > 0) at which ``phase_noise_dbc_hz`` is specified."""

    phase_noise_corner_hz: float = 100e3
    """PLL loop bandwidth (Hz, > 0): below it the phase noise is flat. With the defaults (-100 dBc/Hz at 100 kHz,
    100 kHz corner) each LO has 0.45 degrees RMS phase jitter."""

    ppm: float | None = None
    """Frequency error of the radio's reference crystal in parts per million (-1000 to 1000). LOs and sample clock
    derive from the one reference (as on a Pluto or B210), so it offsets both: two radios see each other with a
    carrier frequency offset of (ppm_tx - ppm_rx) * 1e-6 * LO and with the transmitter's samples stretched by
    (1 + ppm_tx * 1e-6) / (1 + ppm_rx * 1e-6), a delay drifting by (ppm_rx - ppm_tx) * 1e-6 samples per sample.
    Absent: drawn from the seed, uniform in +-``ppm_spread``. Datasheet values: +-25 ppm for a Pluto's 40 MHz
    reference (two radios up to 50 ppm apart, 122 kHz at 2.45 GHz, 290 kHz at 5.8 GHz), +-2 ppm for a B210's
    TCXO."""

    ppm_spread: float = 1.0
    """Half-width (ppm, >= 0) of the uniform distribution ``ppm`` is drawn from when it is not given. The default
    models references after the usual factory/XO calibration (two radios differ by at most 2 ppm); 25 models
    uncalibrated Pluto crystals (the OFDM receiver searches +-50 ppm by default)."""

    iq_gain_db: float = 0.2
    """TX IQ gain imbalance in dB (-6 to 6): the Q branch has this much more gain than the I branch."""

    iq_phase_deg: float = 1.0
    """TX IQ phase imbalance in degrees (-45 to 45): the Q branch's deviation from quadrature. With 0.2 dB and 1
    degree the image is about 37 dB below the signal."""

    lo_leakage_dbc: float = -40.0
    """TX LO leakage (carrier feed-through) power relative to a full-scale carrier (0 dBFS), in dB (-200 to 0). It
    is a constant at the DAC output while the radio transmits and does not scale with the signal level, like a
    DC offset. ``-inf`` switches it off."""

    noise_figure_db: float = 6.0
    """Receiver noise figure in dB (0 to 40). Thermal noise at the LNA input has power
    k * (temperature_c + 273.15) * sample_rate * 10^(noise_figure_db / 10)."""

    lna_iip3_dbm: float = -18.0
    """LNA input third-order intercept point in dBm (-60 to 60), referred to the antenna and independent of the RX
    gain. The LNA is y = x (1 - |x|^2 / P_IIP3), saturating at its peak output, so a two-tone test gives products
    at 2 f1 - f2 and 2 f2 - f1 rising 3 dB per dB and a strong signal inside the receiver's simulated band
    compresses (desensitises) a weak one. ``inf`` makes the LNA linear."""

    dac_bits: int = 12
    """DAC resolution in bits per component (2 to 24; 24 is effectively ideal)."""

    adc_bits: int = 12
    """ADC resolution in bits per component (2 to 24; 24 is effectively ideal). Components beyond full scale are
    clipped and counted in RxMetadata.clip_count."""

    tx_fullscale_dbm: float = 10.0
    """TX output power in dBm of a 0 dBFS signal (mean |x|^2 = 1) at 0 dB TX gain with the PA in its linear region
    (-60 to 40). The output power of a signal is this + its level in dBFS + tx_gain_db, less PA compression."""

    rx_fullscale_dbm: float = 0.0
    """Input power in dBm at the antenna that reaches 0 dBFS at the ADC at 0 dB RX gain (-100 to 40). At RX gain G
    dB, full scale is reached at rx_fullscale_dbm - G dBm."""

    temperature_c: float = 25.0
    """Physical temperature of the radio in degrees Celsius (-273.15 to 200); sets the thermal noise and is
    reported as RxMetadata.temperature_c."""


@dataclass(frozen=True)
class LinkParams:
    """The propagation from one radio's TX port to one radio's RX port (an ordered pair; a radio to itself is its
    loopback)."""

    path_loss_db: float = 50.0
    """Path loss in dB from TX output to RX input (0 to 300; ``inf`` disconnects the pair). For the self link of a
    radio the default is ``loopback_path_loss_db`` instead."""

    delay_samples: float = 0.0
    """Propagation delay in samples of the receiver's sample rate, fractional allowed (0 to 65536). Applied exactly
    (band-limited interpolation)."""

    fading: str = "none"
    """Small-scale fading: "none" (static) or "jakes" (flat Rayleigh fading with a Jakes/Clarke Doppler spectrum,
    sum of 32 sinusoids, unit mean power on top of the path loss). Self links default to "none"."""

    doppler_hz: float = 0.0
    """Maximum Doppler frequency f_d in Hz for "jakes" fading (0 to 10000; 0 gives a static random Rayleigh
    gain)."""


@dataclass(frozen=True)
class AirParams:
    """How the simulated air is computed."""

    seed: int = 0
    """Seed of every random draw (hidden parameters, phase noise, distortion and noise realisations). Same config,
    seed and call sequence give bit-identical samples."""

    tx_oversample: int = 4
    """Oversampling of the TX chain (1, 2, 4, 8 or 16): the PA runs at this multiple of the radio's sample rate, so
    its spectral regrowth up to that bandwidth reaches neighbouring receivers instead of aliasing."""

    rx_oversample_max: int = 4
    """Largest oversampling of a receiver (1, 2, 4, 8 or 16). When transmitters outside a receiver's sample-rate
    band are strong enough to matter to its LNA (gain compression, desensitisation), the receiver simulates its LNA
    at the smallest power of two times its rate, up to this value, that holds their occupied bands; otherwise (the
    usual co-channel case) it works at its own rate. 1 keeps every receiver at its rate: adjacent-channel signals
    then reach it only through the part of their spectrum inside its band."""

    loopback_path_loss_db: float = 40.0
    """Default path loss in dB of every self link "NAME->NAME" (a radio hearing its own transmission through its
    loopback / antenna coupling), 0 to 300 or ``inf``."""


_RADIO_KEYS = tuple(f.name for f in dataclasses.fields(RadioParams))

RADIO_PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {
        "tx_evm": 0.0, "rx_evm": 0.0, "pa_smoothness": RadioParams.pa_smoothness, "pa_sat_dbfs": math.inf,
        "am_pm_deg": 0.0, "phase_noise_dbc_hz": -math.inf,
        "phase_noise_offset_hz": RadioParams.phase_noise_offset_hz,
        "phase_noise_corner_hz": RadioParams.phase_noise_corner_hz, "ppm": 0.0, "ppm_spread": 0.0,
        "iq_gain_db": 0.0, "iq_phase_deg": 0.0, "lo_leakage_dbc": -math.inf, "noise_figure_db": 0.0,
        "lna_iip3_dbm": math.inf, "dac_bits": 24, "adc_bits": 24,
        "tx_fullscale_dbm": RadioParams.tx_fullscale_dbm, "rx_fullscale_dbm": RadioParams.rx_fullscale_dbm,
    },
    "pluto": {
        "tx_evm": 0.02, "rx_evm": 0.02, "pa_smoothness": 1.0, "pa_sat_dbfs": 9.0, "am_pm_deg": 0.0,
        "phase_noise_dbc_hz": -103.6, "phase_noise_offset_hz": 100e3, "phase_noise_corner_hz": 100e3,
        "ppm_spread": 25.0, "iq_gain_db": 0.02, "iq_phase_deg": 0.2, "lo_leakage_dbc": -50.0,
        "noise_figure_db": 3.0, "lna_iip3_dbm": -14.0, "dac_bits": 12, "adc_bits": 12,
        "tx_fullscale_dbm": 7.0, "rx_fullscale_dbm": 0.0,
    },
    "b210": {
        "tx_evm": 0.01, "rx_evm": 0.01, "pa_smoothness": 1.0, "pa_sat_dbfs": 6.0, "am_pm_deg": 0.0,
        "phase_noise_dbc_hz": -96.2, "phase_noise_offset_hz": 100e3, "phase_noise_corner_hz": 100e3,
        "ppm_spread": 2.0, "iq_gain_db": 0.22, "iq_phase_deg": 1.44, "lo_leakage_dbc": -50.0,
        "noise_figure_db": 8.0, "lna_iip3_dbm": -20.0, "dac_bits": 12, "adc_bits": 12,
        "tx_fullscale_dbm": 10.0, "rx_fullscale_dbm": 0.0,
    },
}
"""Radio keys set by ``preset = NAME``; the module documentation gives each value's datasheet figure and source."""


def preset_values(name: Any, path: str = "preset", where: str = "[sim]") -> dict[str, Any]:
    """The radio keys of preset ``name`` (a copy). An unknown name raises RadioConfigError naming ``where``,
    ``path``, the value and the allowed presets."""
    if not isinstance(name, str) or name not in RADIO_PRESETS:
        allowed = ", ".join(f'"{n}"' for n in RADIO_PRESETS)
        raise RadioConfigError(f"{where}: {path} = {name!r} is not a radio preset; allowed: {allowed}")
    return dict(RADIO_PRESETS[name])

_LINK_KEYS = tuple(f.name for f in dataclasses.fields(LinkParams))
_AIR_KEYS = tuple(f.name for f in dataclasses.fields(AirParams))
FADING_MODELS = ("none", "jakes")
_POW2 = (1, 2, 4, 8, 16)


# ---- value checks ---------------------------------------------------------------------------------------------
# Each entry: key -> (kind, low, high, allow_inf, describe). kind: "float" or "int".
_RANGES: dict[str, tuple[str, float, float, str | None]] = {
    "tx_evm": ("float", 0.0, 0.999, None),
    "rx_evm": ("float", 0.0, 0.999, None),
    "pa_smoothness": ("float", 0.1, 100.0, None),
    "pa_sat_dbfs": ("float", -40.0, 40.0, "+inf"),
    "am_pm_deg": ("float", -90.0, 90.0, None),
    "phase_noise_dbc_hz": ("float", -200.0, -30.0, "-inf"),
    "phase_noise_offset_hz": ("float", 1.0, 1e9, None),
    "phase_noise_corner_hz": ("float", 1.0, 1e9, None),
    "ppm": ("float", -1000.0, 1000.0, None),
    "ppm_spread": ("float", 0.0, 1000.0, None),
    "iq_gain_db": ("float", -6.0, 6.0, None),
    "iq_phase_deg": ("float", -45.0, 45.0, None),
    "lo_leakage_dbc": ("float", -200.0, 0.0, "-inf"),
    "noise_figure_db": ("float", 0.0, 40.0, None),
    "lna_iip3_dbm": ("float", -60.0, 60.0, "+inf"),
    "dac_bits": ("int", 2, 24, None),
    "adc_bits": ("int", 2, 24, None),
    "tx_fullscale_dbm": ("float", -60.0, 40.0, None),
    "rx_fullscale_dbm": ("float", -100.0, 40.0, None),
    "temperature_c": ("float", -273.15, 200.0, None),
    "path_loss_db": ("float", 0.0, 300.0, "+inf"),
    "delay_samples": ("float", 0.0, 65536.0, None),
    "doppler_hz": ("float", 0.0, 10000.0, None),
    "seed": ("int", 0, 2**63 - 1, None),
    "loopback_path_loss_db": ("float", 0.0, 300.0, "+inf"),
}


def _describe(key: str) -> str:
    if key == "fading":
        return "one of " + ", ".join(f'"{m}"' for m in FADING_MODELS)
    if key in ("tx_oversample", "rx_oversample_max"):
        return "one of " + ", ".join(str(v) for v in _POW2)
    kind, low, high, inf = _RANGES[key]
    what = "an integer" if kind == "int" else "a number"
    extra = f", or {inf.lstrip('+')}" if inf else ""
    return f"{what} from {low:g} to {high:g}{extra}"


def check_value(key: str, value: Any, path: str, where: str) -> Any:
    """Return ``value`` converted to the key's type, or raise RadioConfigError naming the file, key path, value
    and what is allowed."""

    def bad() -> RadioConfigError:
        return RadioConfigError(f"{where}: {path} = {value!r} is not allowed; allowed: {_describe(key)}")

    if key == "fading":
        if not isinstance(value, str) or value not in FADING_MODELS:
            raise bad()
        return value
    if key in ("tx_oversample", "rx_oversample_max"):
        if isinstance(value, bool) or not isinstance(value, int) or value not in _POW2:
            raise bad()
        return int(value)
    kind, low, high, inf = _RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad()
    if kind == "int":
        if not isinstance(value, int) or not low <= value <= high:
            raise bad()
        return int(value)
    v = float(value)
    if math.isnan(v):
        raise bad()
    if math.isinf(v):
        if (inf == "+inf" and v > 0) or (inf == "-inf" and v < 0):
            return v
        raise bad()
    if not low <= v <= high:
        raise bad()
    return v


def _unknown(key: str, path: str, allowed: tuple[str, ...], where: str) -> RadioConfigError:
    return RadioConfigError(f"{where}: unknown key {path}; allowed keys there: {', '.join(allowed)}")


def _link_name(tx: str, rx: str) -> str:
    return f"{tx}->{rx}"


def parse_link_name(name: str, path: str, where: str) -> tuple[str, str]:
    """``"sim0->sim1"`` -> ``("sim0", "sim1")``; anything else raises RadioConfigError."""
    parts = name.split("->") if isinstance(name, str) else []
    if len(parts) != 2 or not all(p.strip() == p and p for p in parts):
        raise RadioConfigError(
            f'{where}: {path} is not a link name; allowed: "TX->RX" with two radio names, e.g. "sim0->sim1"')
    return parts[0], parts[1]


@dataclass(frozen=True)
class SimConfig:
    """The resolved ``[sim]`` table: air parameters, radio and link defaults, and per-radio / per-link overrides."""

    air: AirParams = field(default_factory=AirParams)
    """Air parameters (seed, oversampling, loopback path loss)."""
    radio: RadioParams = field(default_factory=RadioParams)
    """Radio defaults (top-level radio keys)."""
    link: LinkParams = field(default_factory=LinkParams)
    """Defaults of links between two different radios (top-level link keys)."""
    radios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-radio overrides: name -> {radio key: value}, values already checked."""
    links: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """Per-link overrides: (tx name, rx name) -> {link key: value}, values already checked."""

    @property
    def seed(self) -> int:
        return self.air.seed

    # ---- lookups ----------------------------------------------------------------------------------------------
    def radio_params(self, name: str) -> RadioParams:
        """The parameters of radio ``name``: defaults with its overrides applied (``ppm`` may still be None)."""
        return dataclasses.replace(self.radio, **dict(self.radios.get(name, {})))

    def link_params(self, tx: str, rx: str) -> LinkParams:
        """The parameters of the link ``tx -> rx``. A self link defaults to the loopback path loss, no delay and
        no fading, whatever the top-level link defaults say."""
        if tx == rx:
            base = LinkParams(path_loss_db=self.air.loopback_path_loss_db)
        else:
            base = self.link
        return dataclasses.replace(base, **dict(self.links.get((tx, rx), {})))

    # ---- parsing ----------------------------------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, where: str = "[sim]") -> "SimConfig":
        """Parse the ``[sim]`` table (a dict as read by tomllib). ``where`` names its source (a file name) in
        error messages. Unknown keys and bad values raise RadioConfigError naming ``where``, the full key path,
        the value and what is allowed."""
        table = dict(table or {})
        top_allowed = _AIR_KEYS + ("preset",) + _RADIO_KEYS + _LINK_KEYS + ("radios", "links")
        air: dict[str, Any] = {}
        radio: dict[str, Any] = {}
        link: dict[str, Any] = {}
        if "preset" in table:
            radio.update(preset_values(table["preset"], "sim.preset", where))
        for key, value in table.items():
            path = f"sim.{key}"
            if key == "preset":
                continue
            if key in ("radios", "links"):
                if not isinstance(value, Mapping):
                    raise RadioConfigError(f"{where}: {path} = {value!r} is not allowed; allowed: a table")
                continue
            if key in _AIR_KEYS:
                air[key] = check_value(key, value, path, where)
            elif key in _RADIO_KEYS:
                radio[key] = check_value(key, value, path, where)
            elif key in _LINK_KEYS:
                link[key] = check_value(key, value, path, where)
            else:
                raise _unknown(key, path, top_allowed, where)

        radios: dict[str, dict[str, Any]] = {}
        for name, over in dict(table.get("radios", {})).items():
            base = f"sim.radios.{_quote(name)}"
            if not isinstance(over, Mapping):
                raise RadioConfigError(f"{where}: {base} = {over!r} is not allowed; allowed: a table of radio keys")
            checked = {}
            if "preset" in over:
                checked.update(preset_values(over["preset"], f"{base}.preset", where))
            for key, value in over.items():
                if key == "preset":
                    continue
                if key not in _RADIO_KEYS:
                    raise _unknown(key, f"{base}.{key}", ("preset",) + _RADIO_KEYS, where)
                checked[key] = check_value(key, value, f"{base}.{key}", where)
            radios[str(name)] = checked

        links: dict[tuple[str, str], dict[str, Any]] = {}
        for name, over in dict(table.get("links", {})).items():
            base = f'sim.links."{name}"'
            pair = parse_link_name(name, base, where)
            if not isinstance(over, Mapping):
                raise RadioConfigError(f"{where}: {base} = {over!r} is not allowed; allowed: a table of link keys")
            checked = {}
            for key, value in over.items():
                if key not in _LINK_KEYS:
                    raise _unknown(key, f"{base}.{key}", _LINK_KEYS, where)
                checked[key] = check_value(key, value, f"{base}.{key}", where)
            links[pair] = checked

        return cls(air=AirParams(**air), radio=RadioParams(**radio), link=LinkParams(**link),
                   radios=radios, links=links)

    def to_table(self) -> dict[str, Any]:
        """The configuration as a ``[sim]`` table with every default written out (``ppm`` only where it is set);
        ``from_table(to_table())`` gives the same configuration. Infinite values stay floats (TOML ``inf``)."""
        out: dict[str, Any] = {}
        out.update(dataclasses.asdict(self.air))
        out.update({k: v for k, v in dataclasses.asdict(self.radio).items() if v is not None})
        out.update(dataclasses.asdict(self.link))
        if self.radios:
            out["radios"] = {name: dict(over) for name, over in self.radios.items()}
        if self.links:
            out["links"] = {_link_name(tx, rx): dict(over) for (tx, rx), over in self.links.items()}
        return out

    @staticmethod
    def example_toml() -> str:
        """A complete, commented ``[sim]`` table with every key at its default, generated from the field
        documentation (for the example configuration file)."""
        lines = ["[sim]"]
        for cls in (AirParams, RadioParams, LinkParams):
            docs = field_docs(cls)
            lines.append("")
            lines.append(f"# ---- {_SECTION_TITLES[cls.__name__]} ----")
            for f in dataclasses.fields(cls):
                for doc_line in textwrap.wrap(docs.get(f.name, ""), 110):
                    lines.append(f"# {doc_line}")
                default = f.default
                if default is None:
                    lines.append(f"# {f.name} = 0.0")
                else:
                    lines.append(f"{f.name} = {_toml_value(default)}")
        lines += ["", "# Presets: preset = NAME here or in [sim.radios.NAME] sets every radio key below to the values of",
                  "# a radio family (explicit keys still win; ppm stays drawn from ppm_spread). Values and their",
                  "# datasheet figures (radio/sim/params.py documents each source):"]
        lines += [f"#   {line}" for line in _preset_comment_lines()]
        lines += ["", "# Per-radio overrides of any radio key:", "# [sim.radios.sim1]", "# ppm = -1.5",
                  "", "# Per-link overrides of any link key (ordered pair TX->RX; NAME->NAME is the loopback):",
                  '# [sim.links."sim0->sim1"]', "# path_loss_db = 70.0", "# delay_samples = 2.5", ""]
        return "\n".join(lines)


_PRESET_FIGURES = {
    "ppm_spread": "Pluto 40 MHz reference +-25 ppm; B210 +-2.0 ppm",
    "iq_gain_db": "AD9363 RX quadrature gain error 0.2 %; B210 SSB suppression -35 dBc",
    "iq_phase_deg": "AD9363 RX quadrature phase error 0.2 deg; B210 SSB suppression -35 dBc",
    "lo_leakage_dbc": "AD9363/AD9361 TX carrier leakage -50 dBc; B210 LO suppression 50 dBc",
    "phase_noise_dbc_hz": "Pluto 0.3 deg rms; B210 1.0 deg rms at 3.5 GHz = 0.70 deg at 2.45 GHz",
    "noise_figure_db": "AD9363 RX NF 3 dB at 2.4 GHz; B210 RX NF < 8 dB",
    "lna_iip3_dbm": "AD9363 IIP3 -14 dBm; B210 IIP3 -20 dBm",
    "tx_evm": "AD9363 EVM -34 dB; AD9361 TX EVM -40 dB",
    "rx_evm": "AD9363 EVM -34 dB; AD9361 RX EVM -40 dB",
    "tx_fullscale_dbm": "Pluto max output 7 dBm; B210 > 10 dBm",
    "pa_sat_dbfs": "AD9361 TX OIP3 19 dBm with Rapp p = 1: OIP3 - tx_fullscale_dbm - 3",
    "dac_bits": "12-bit DAC", "adc_bits": "12-bit ADC",
}


def _preset_comment_lines() -> list[str]:
    names = list(RADIO_PRESETS)
    lines = [f"{'key':<22}" + "".join(f"{n:>10}" for n in names) + "  datasheet figure (2.4 GHz)"]
    for key in _RADIO_KEYS:
        if not any(key in RADIO_PRESETS[n] for n in names):
            continue
        cells = "".join(f"{_toml_value(RADIO_PRESETS[n].get(key, '-')):>10}".replace('"', "") for n in names)
        lines.append(f"{key:<22}{cells}  {_PRESET_FIGURES.get(key, '')}".rstrip())
    return lines


_SECTION_TITLES = {
    "AirParams": "air",
    "RadioParams": "radio defaults (override per radio in [sim.radios.NAME])",
    "LinkParams": 'link defaults (override per ordered pair in [sim.links."TX->RX"])',
}


def _quote(name: Any) -> str:
    name = str(name)
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    return str(v)


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass, field name -> text with whitespace collapsed."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    assert isinstance(body, ast.ClassDef)
    stmts = body.body
    for stmt, nxt in zip(stmts, stmts[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def example_table() -> dict[str, Any]:
    """The default ``[sim]`` table with every key (what an empty table resolves to)."""
    return SimConfig().to_table()


__all__ = ["AirParams", "FADING_MODELS", "LinkParams", "RADIO_PRESETS", "RadioParams", "SimConfig", "example_table",
           "check_value", "field_docs", "parse_link_name", "preset_values"]
